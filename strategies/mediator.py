"""The mediator hook: what a strategy may do inside the world's rollout.

A strategy that owns a mediator (``strategy.mediator``) is called by the world at every
step of every game copy. Each capability is optional:

(a) **Delegation** (``delegation = True``): every agent's action set gains a delegation
    bit, so the agent's own choice ``c = a + A·d`` (action ``a``, delegate ``d ∈ {0, 1}``)
    stays on-policy for its learner. The world decodes the choices and calls
    :meth:`Mediator.act_for`; it then plays the mediator's action for the agents that
    delegated and the agents' own actions for everyone else, whatever the mediator
    returns for them. With ``delegation_scope = "first"`` (sequential games) the choice
    made at the first step binds the whole episode: the world ignores the bit afterwards
    and the delegators of step 0 stay delegators; ``"any"`` lets an agent delegate at any
    step, depending on what it observes.
(b) **Stackelberg steps** (``stackelberg = True``): the server wraps the game in
    ``envs.stackelberg.StackelbergView``, whose observations have a fixed slot for the
    leaders' actions. The world asks :meth:`leaders` who leads in each copy; leaders act
    on their observation; followers then observe the leaders' actions of this step in
    their slot (``StackelbergView.observe_leaders``) and act; the world names the leaders
    to the game (``StackelbergView.set_leaders``) before it steps.
(c) **Reward reshaping**: :meth:`reshape` returns the rewards the agents train on this
    step (the metrics keep the game's own rewards).

The mediator sees the global state and the joint action; what it may *use* (e.g. only
the known part of utilities) is the concrete mediator's contract, stated in its docstring.
"""

from __future__ import annotations

import numpy as np


class Mediator:
    """Base class: no delegation, no leaders, no reshaping."""

    delegation: bool = False
    stackelberg: bool = False
    reshapes: bool = False
    delegation_scope: str = "any"  # "first": the step-0 delegation holds for the episode

    @classmethod
    def agent_actions(cls, num_actions: int) -> int:
        """The size of an agent's action set in a game with ``num_actions``: doubled by the
        delegation bit when the mediator takes delegations."""
        return num_actions * (2 if cls.delegation else 1)

    def begin_rollout(self, server_round: int) -> None:
        """Called by the world before each rollout (a mediator that draws random numbers
        reseeds here, so a resumed run draws what an uninterrupted one would)."""

    def act_for(self, t: int, state: np.ndarray, actions: np.ndarray, delegate: np.ndarray,
                obs: np.ndarray | None = None) -> np.ndarray:
        """Joint actions ``[B, N]`` for the copies' delegators (``delegate`` bool ``[B, N]``).

        ``actions`` are the actions every agent submitted; ``obs`` ``[B, N, ...]`` what each
        agent observes this step (for mediators that act through agents' policies). Only
        the entries where ``delegate`` is True are used by the world.
        """
        return actions

    def leaders(self, t: int, state: np.ndarray) -> np.ndarray:
        """Who leads this step in each copy: bool ``[B, N]``."""
        raise NotImplementedError

    def reshape(self, t: int, state: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        """Rewards ``[B, N]`` the agents train on for this step."""
        return rewards

    def end_of_rollout(self) -> dict[str, float]:
        """Called after each rollout; returns the mediator's own metrics (none by default)."""
        return {}
