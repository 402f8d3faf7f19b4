r"""Pareto and punishing mediators for sequential games: a mediator that acts through
trained joint policies (McAleer et al., Sec. 4.4 and App. B.2, on Cleanup).

A sequential game has no payoff table to enumerate, so the mediator plays pre-trained
policies for the agents who delegate (clients/joint_policy.py; the files are
``OUT/policies.pt`` of ordinary runs):

- the **cooperative** joint policy, trained with every agent maximising the team's
  reward (``--strategy avg``, the mean, i.e. the sum up to 1/N), flag
  ``--mediator-policy``;
- the **punishing** joint policy, trained with every agent minimising the others'
  reward (``--strategy spite``), flag ``--punishing-policy``.

Rules, per copy and step, with D the delegators:

- Pareto: if :math:`|D| \ge 2`, the delegators play the cooperative policy's actions;
  otherwise everyone plays their own (the paper: "if one agent delegates but not the
  other, both agents play their original policies").
- Punishing: if everyone delegates, the cooperative policy; if some do, the delegators
  play the punishing policy; nobody delegating changes nothing.

Each delegator's action comes from *its own* slot of the joint policy, on its own
observation (the paper's policies were trained independently per agent).

**Decision: no Pareto guarantee.** In a normal-form game the Pareto mediator checks that
no delegator is worse off ([Pareto Eq. 3]); with trained policies in a sequential game it cannot,
and neither did the paper: the cooperative policy is trusted to be better for every
delegator. The delegation-rate metrics show whether the agents agree.

**When agents delegate** (``--delegate``): ``first`` (the paper) — the choice made at the
first step binds the whole episode (``delegation_scope = "first"``, enforced by the
world); ``any`` (the paper's future work) — agents may delegate at any step, depending on
what they see, and the rule above is applied step by step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clients.joint_policy import JointPolicy
from strategies.mediator import Mediator
from typing import ClassVar
from clients.settings import Settings, setting

SCOPES = ("first", "any")


@dataclass
class DelegationConfig(Settings):
    """The policy mediators' settings (sequential games only; one-shot games ignore them)."""

    title: ClassVar[str] = "Mediators (pareto, punishing)"

    mediator_policy: str = setting("", "sequential games: OUT/policies.pt of a run of --strategy avg on the same "
                                       "game, the cooperative joint policy the mediator plays")
    punishing_policy: str = setting("", "sequential games: OUT/policies.pt of a run of --strategy spite, the "
                                        "punishing mediator's joint policy")
    delegate: str = setting("first", "when agents may delegate in a sequential game: first (binds the episode) or "
                                     "any step", choices=SCOPES)

    def load(self, rule: str, game, seed: int) -> "PolicyMediator":
        """The mediator for ``game``, with its joint policies loaded and checked."""
        if self.delegate not in SCOPES:
            raise ValueError(f"unknown delegate '{self.delegate}'; valid choices: {', '.join(SCOPES)}")
        needed = [("mediator_policy", "avg")] + ([("punishing_policy", "spite")] if rule == "punishing" else [])
        for key, pretrain in needed:
            if not getattr(self, key):
                raise ValueError(f"{rule} on {game.name} acts through trained policies: give --{key.replace('_', '-')} "
                                 f"OUT/policies.pt of a run of `run_sim.py --env {game.name} --agents "
                                 f"{game.num_agents} --strategy {pretrain}`")
        joint = [JointPolicy(getattr(self, key), game.name, game.num_agents, game.num_actions,
                             game.observation_space) for key, _ in needed]
        return PolicyMediator(rule, joint[0], joint[1] if len(joint) > 1 else None, self.delegate, seed)


class PolicyMediator(Mediator):
    """Plays a cooperative (and, for ``punishing``, a punishing) joint policy for delegators."""

    delegation = True

    def __init__(self, rule: str, cooperative: JointPolicy, punishing: JointPolicy | None = None,
                 scope: str = "first", seed: int = 0):
        if rule not in ("pareto", "punishing"):
            raise ValueError(f"unknown mediator rule '{rule}'; valid choices: pareto, punishing")
        if rule == "punishing" and punishing is None:
            raise ValueError("the punishing mediator needs a punishing joint policy (--punishing-policy)")
        if scope not in SCOPES:
            raise ValueError(f"unknown delegation scope '{scope}'; valid choices: {', '.join(SCOPES)}")
        self.rule, self.cooperative, self.punishing = rule, cooperative, punishing
        self.delegation_scope, self.seed = scope, seed
        self.rng = np.random.default_rng([seed, 0, 7919])
        self._steps = self._cooperative_steps = self._punishing_steps = 0

    def begin_rollout(self, server_round: int) -> None:
        self.rng = np.random.default_rng([self.seed, server_round, 7919])

    def act_for(self, t: int, state: np.ndarray, actions: np.ndarray, delegate: np.ndarray,
                obs: np.ndarray | None = None) -> np.ndarray:
        if obs is None:
            raise ValueError("a policy mediator acts on the agents' observations; the world passes them")
        B, N = actions.shape
        count = delegate.sum(axis=1)
        if self.rule == "pareto":
            cooperate, punish = count >= 2, np.zeros(B, bool)
        else:
            cooperate, punish = count == N, (count > 0) & (count < N)
        out = actions.copy()
        u = self.rng.random((B, N))
        if cooperate.any():
            out[cooperate] = self.cooperative.act(obs[cooperate], u[cooperate])
        if punish.any():
            assert self.punishing is not None  # only the punishing rule punishes, and it has one (__init__)
            out[punish] = self.punishing.act(obs[punish], u[punish])
        self._steps += B
        self._cooperative_steps += int(cooperate.sum())
        self._punishing_steps += int(punish.sum())
        return np.where(delegate, out, actions)

    def end_of_rollout(self) -> dict[str, float]:
        steps = max(self._steps, 1)
        metrics = {"mediated_share": (self._cooperative_steps + self._punishing_steps) / steps,
                   "punishing_share": self._punishing_steps / steps}
        self._steps = self._cooperative_steps = self._punishing_steps = 0
        return metrics
