"""The world: B parallel copies of a game stepped with every agent's acting policy.

The world lives with the server because a Flower message per environment step is far too
slow (>= 100 ms in simulation). It is a trusted simulator: it holds each agent's *acting*
record (what the agent last reported: its policy's parameters and policy kind) to play
the game, and nothing else reads them. Strategies see only what agents choose to share.

Agents are grouped by learner; each group's networks are stacked and evaluated in one pass
per step (clients.policies.StackedPolicies), and the group's policy kind turns outputs
into actions with the world's seeded uniforms.

A strategy's mediator (strategies.mediator) hooks into every step: Stackelberg leaders
act first and followers see their actions (the game is then wrapped in
envs.stackelberg.StackelbergView); delegators' actions are replaced by the mediator's;
rewards may be reshaped for training.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import Array, ArrayRecord

from clients import learners as learner_registry
from clients.networks import NetworkConfig, policy_seed, to_record
from clients.policies import ActingSpec, StackedPolicies, act
from clients.rollout import Rollout
from envs.base import BatchedGame
from envs.stackelberg import StackelbergView
from strategies.mediator import Mediator


class PolicyGroup:
    """The agents that share a learner: their stacked networks, policy kind and ε."""

    def __init__(self, learner: str, agents: list[int], initial: torch.nn.Module, epsilon: float,
                 records: list[ArrayRecord] | None = None):
        """``records``: each agent's initial policy (``initial``'s parameters for all by default)."""
        self.learner = learner
        self.kind = learner_registry.learner_class(learner).kind
        self.agents = agents
        self.policies = StackedPolicies(initial, records or [to_record(initial)] * len(agents))
        self.epsilon = torch.full((len(agents), 1), float(epsilon))

    def act(self, obs: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``obs [B, N, ...]`` and uniforms ``u [B, N]`` -> this group's actions and log-probs ``[B, n]``
        (a continuous game: ``u [B, N, 1 + A]`` -> actions ``[B, n, A]``)."""
        o = torch.from_numpy(np.ascontiguousarray(obs[:, self.agents].swapaxes(0, 1)))
        out = self.policies(o)  # [n, B, A]
        a, logp = act(self.kind, out, self.epsilon, torch.from_numpy(np.ascontiguousarray(u[:, self.agents].swapaxes(0, 1))))
        return a.swapaxes(0, 1).numpy(), logp.T.numpy()


class World:
    """Plays B copies of a game for one episode per round with the agents' acting policies."""

    def __init__(self, game: BatchedGame | StackelbergView, learners: list[str], net: NetworkConfig, seed: int,
                 mediator: Mediator | None = None, epsilons: dict[str, float] | None = None):
        """``epsilons``: each learner's exploration rate until its agents report their own
        (the first round); 0 where not given."""
        if len(learners) != game.num_agents:
            raise ValueError(f"{len(learners)} learners for {game.num_agents} agents")
        if mediator is not None and mediator.stackelberg and not isinstance(game, StackelbergView):
            raise ValueError("a mediator with Stackelberg leaders needs the game wrapped in StackelbergView "
                             "(envs/stackelberg.py)")
        if (unfit := learner_registry.misfit(learners, game.continuous)) is not None:
            raise ValueError(f"{game.name} takes {'continuous' if game.continuous else 'discrete'} actions; learner "
                             f"{unfit} acts {'discretely' if game.continuous else 'continuously'}")
        if game.continuous and mediator is not None:
            raise ValueError("mediators choose discrete actions; a continuous game has none")
        self.game, self.seed, self.mediator = game, seed, mediator
        self.num_actions = (mediator or Mediator).agent_actions(game.num_actions)
        self.groups: list[PolicyGroup] = []
        self._where: dict[int, tuple[PolicyGroup, int]] = {}
        self._reported: set[int] = set()  # the agents whose acting policy was set (their record is in the stack)
        for name in dict.fromkeys(learners):
            agents = [i for i, n in enumerate(learners) if n == name]
            initial = self.initial_policy(name, game, self.num_actions, net, seed)
            records = None  # every agent starts from ``initial`` unless each draws its own (the learners do the same)
            if net.init_weights != "shared":
                records = [to_record(self.initial_policy(name, game, self.num_actions, net, policy_seed(net, seed, a)))
                           for a in agents]
            group = PolicyGroup(name, agents, initial, (epsilons or {}).get(name, 0.0), records)
            self.groups.append(group)
            self._where |= {a: (group, k) for k, a in enumerate(agents)}

    @staticmethod
    def initial_policy(learner: str, game: BatchedGame | StackelbergView, num_actions: int, net: NetworkConfig,
                       seed: int) -> torch.nn.Module:
        """The common initial policy of every agent with this learner."""
        return learner_registry.learner_class(learner).policy_network(game.observation_space, num_actions, net, seed)

    def set_acting(self, agent: int, record: ArrayRecord, spec: ActingSpec | None = None) -> None:
        """Replace one agent's acting policy (and its ε, from the acting spec it reported)."""
        group, k = self._where[agent]
        if spec is not None:
            if spec.learner != group.learner or spec.kind != group.kind:
                raise ValueError(f"agent {agent} reported a {spec.learner}/{spec.kind} policy; "
                                 f"it plays {group.learner}/{group.kind}")
            group.epsilon[k, 0] = spec.epsilon
        group.policies.set(k, record)
        self._reported.add(agent)

    def acting_record(self, agent: int) -> ArrayRecord:
        """The agent's acting policy as the record it was set from (read from the stack, so
        the world keeps one copy of every policy)."""
        group, k = self._where[agent]
        return group.policies.record(k)

    def state_dict(self) -> dict:
        """The acting policies and ε the agents reported (for checkpoints)."""
        # tensors (views of the stack), which torch.save writes as one storage per array, not
        # through its in-memory pickle: a checkpoint of many agents is not held twice in memory
        acting = {}
        for a in sorted(self._reported):
            group, k = self._where[a]
            acting[a] = {name: torch.from_numpy(v) for name, v in group.policies.arrays(k).items()}
        return {"acting": acting,
                "epsilon": {a: float(g.epsilon[k, 0]) for a, (g, k) in self._where.items()}}

    def acting_arrays(self) -> list[dict[str, np.ndarray]] | None:
        """Every agent's acting policy in agent order, as its arrays by name (views of the
        stacks: no copy); None until all have reported one."""
        if len(self._reported) < self.game.num_agents:
            return None
        return [g.policies.arrays(k) for g, k in (self._where[a] for a in range(self.game.num_agents))]

    def load_state_dict(self, state: dict) -> None:
        for agent, arrays in state["acting"].items():
            self.set_acting(agent, ArrayRecord({k: Array(v) for k, v in arrays.items()}))
        for agent, eps in state["epsilon"].items():
            group, k = self._where[agent]
            group.epsilon[k, 0] = eps

    def flat_policies(self, agents: list[int]) -> np.ndarray | None:
        """The agents' acting parameters as rows ``[len(agents), D]``; None if they differ in learner."""
        where = [self._where[a] for a in agents]
        if len({id(g) for g, _ in where}) != 1:
            return None
        return where[0][0].policies.flat([k for _, k in where])

    def _act(self, obs: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        B, N = u.shape[:2]
        shape, dtype = self.game.action_shape, (np.float32 if self.game.continuous else np.int64)
        actions, logp = np.zeros((B, N, *shape), dtype), np.zeros((B, N), np.float32)
        for group in self.groups:
            actions[:, group.agents], logp[:, group.agents] = group.act(obs, u)
        return actions, logp

    def rollout(self, server_round: int, steps: int | None = None) -> Rollout:
        """One episode (or ``steps`` steps) in every copy; seeded by (seed, round)."""
        game, med = self.game, self.mediator
        stackelberg = med is not None and med.stackelberg
        delegation = med is not None and med.delegation
        reshapes = med is not None and med.reshapes
        T = steps or game.episode_length
        rng = np.random.default_rng([self.seed, server_round])
        if med is not None:
            med.begin_rollout(server_round)
        obs = game.reset(seed=int(rng.integers(2**31)))
        B, N = obs.shape[:2]
        out_obs = np.zeros((T + 1, *obs.shape), obs.dtype)
        states = np.zeros((T + 1, B, game.state_space.shape[0]), np.float32)
        shape = game.action_shape  # () for discrete actions
        actions = np.zeros((T, B, N, *shape), np.float32 if game.continuous else np.int64)
        draws = (B, N, 1 + shape[0]) if shape else (B, N)  # exploration's uniforms (policies.act)
        logp = np.zeros((T, B, N), np.float32)
        rewards = np.zeros((T, B, N), np.float32)
        terminated = np.zeros((T, B, N), bool)
        mask = np.zeros((T, B, N), np.float32)
        shaped = np.zeros((T, B, N), np.float32) if reshapes else None
        played = np.zeros((T, B, N), np.int64) if delegation else None
        delegated = np.zeros((T, B, N), bool) if delegation else None
        leaders = np.zeros((T, B, N), bool) if stackelberg else None
        alive = np.ones((B, N), bool)
        states[0] = game.state()
        for t in range(T):
            u = rng.random(draws)
            choice, lp = self._act(obs, u)
            if stackelberg:  # leaders act on their observation, followers see the leaders' actions
                # checked in __init__; leaders is recorded in Stackelberg steps
                assert med is not None and leaders is not None and isinstance(game, StackelbergView)
                lead = np.asarray(med.leaders(t, states[t]), bool)
                seen = game.observe_leaders(obs, choice % game.num_actions, lead)
                follow_choice, follow_lp = self._act(seen, u)
                choice, lp = np.where(lead, choice, follow_choice), np.where(lead, lp, follow_lp)
                obs = seen  # leaders' slots stay empty: observe_leaders leaves them so
                leaders[t] = lead
                game.set_leaders(lead)  # for games whose rules favour leaders (envs/stackelberg.py)
            play = choice
            if delegation:  # the agent's choice is (action, delegate); the mediator acts for delegators
                assert med is not None and played is not None and delegated is not None
                own, delegate = choice % game.num_actions, choice >= game.num_actions
                if med.delegation_scope == "first":  # the step-0 choice binds the episode
                    delegate = delegate if t == 0 else delegated[0]
                proposal = np.asarray(med.act_for(t, states[t], own.copy(), delegate.copy(), obs=obs), np.int64)
                play = np.where(delegate, proposal, own)
                played[t], delegated[t] = play, delegate
            out_obs[t] = obs
            obs, r, term, trunc = game.step(play)
            actions[t], logp[t] = choice, lp
            rewards[t] = r * alive
            if reshapes:
                assert med is not None and shaped is not None
                shaped[t] = np.asarray(med.reshape(t, states[t], play, r), np.float32) * alive
            mask[t] = alive
            terminated[t] = term & alive
            states[t + 1] = game.state()
            alive = alive & ~term
            if not alive.any() or trunc.all():
                T = t + 1
                break
        out_obs[T] = obs
        cut = (lambda x: None if x is None else x[:T])
        return Rollout(out_obs[: T + 1], states[: T + 1], actions[:T], logp[:T], rewards[:T], terminated[:T],
                       mask[:T], cut(shaped), cut(played), cut(delegated), cut(leaders))
