"""The world: B parallel copies of a game stepped with every agent's acting policy.

The world lives with the server because a Flower message per environment step is far too
slow (>= 100 ms in simulation). It is a trusted simulator: it holds each agent's *acting*
weights (what the agent last reported) to play the game, and nothing else reads them.
Strategies see only what agents choose to share.

All N actors are stacked into batched matrices, so one step is one batched forward pass
(``torch.baddbmm``) for all agents and copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import ArrayRecord

from clients.ppo import Experience
from envs.base import BatchedGame


@dataclass
class Rollout:
    """Everything that happened in a round. Axes: time T, copy B, agent N."""

    obs: np.ndarray  # [T+1, B, N, obs_dim]
    state: np.ndarray  # [T+1, B, state_dim] global state (for centralised critics)
    actions: np.ndarray  # [T, B, N]
    logp: np.ndarray  # [T, B, N] behaviour log-probabilities
    rewards: np.ndarray  # [T, B, N] the game's rewards
    terminated: np.ndarray  # [T, B, N]
    mask: np.ndarray  # [T, B, N] 1 while the agent's episode is running

    @property
    def returns(self) -> np.ndarray:
        """Each agent's episode return, averaged over the B copies: [N]."""
        return (self.rewards * self.mask).sum(axis=0).mean(axis=0)

    @property
    def agent_steps(self) -> int:
        return int(self.mask.sum())

    def experience(self, agent: int, rewards: np.ndarray | None = None) -> Experience:
        """Agent ``agent``'s own slice; ``rewards`` [T, B, N] overrides the game's."""
        r = self.rewards if rewards is None else rewards
        return Experience(
            obs=self.obs[:, :, agent], actions=self.actions[:, :, agent], logp=self.logp[:, :, agent],
            rewards=r[:, :, agent], terminated=self.terminated[:, :, agent], mask=self.mask[:, :, agent],
        )


class StackedPolicies:
    """N MLP actors of identical shape evaluated in one batched pass."""

    def __init__(self, records: list[ArrayRecord]):
        self.weights: list[torch.Tensor] = []  # per layer [N, in, out]
        self.biases: list[torch.Tensor] = []  # per layer [N, 1, out]
        layers = _layers(records[0])
        for w_key, b_key in layers:
            self.weights.append(torch.stack([_t(r[w_key]).T for r in records]).contiguous())
            self.biases.append(torch.stack([_t(r[b_key]) for r in records]).unsqueeze(1))
        self._layers = layers

    def set(self, agent: int, record: ArrayRecord) -> None:
        """Replace one agent's acting weights."""
        for i, (w_key, b_key) in enumerate(self._layers):
            self.weights[i][agent] = _t(record[w_key]).T
            self.biases[i][agent, 0] = _t(record[b_key])

    def flat(self, agents: list[int]) -> np.ndarray:
        """The agents' parameters as rows of one matrix [len(agents), D]."""
        parts = [t[agents].reshape(len(agents), -1) for t in (*self.weights, *self.biases)]
        return torch.cat(parts, dim=1).numpy().astype(np.float64)

    @torch.no_grad()
    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        """obs [N, B, d] -> logits [N, B, A]."""
        x = obs
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = torch.tanh(x)
        return x


def _t(array) -> torch.Tensor:
    return torch.as_tensor(array.numpy(), dtype=torch.float32)


def _layers(record: ArrayRecord) -> list[tuple[str, str]]:
    """(weight, bias) keys of the Linear layers of an nn.Sequential actor, in order."""
    weights = sorted((k for k in record if k.endswith(".weight")), key=lambda k: int(k.split(".")[0]))
    return [(w, w[: -len("weight")] + "bias") for w in weights]


class World:
    """Plays B copies of a game for one episode per round with the agents' acting policies."""

    def __init__(self, game: BatchedGame, initial_policy: ArrayRecord, seed: int):
        self.game = game
        self.seed = seed
        self.policies = StackedPolicies([initial_policy] * game.num_agents)

    def set_acting(self, agent: int, record: ArrayRecord) -> None:
        self.policies.set(agent, record)

    def rollout(self, server_round: int, steps: int | None = None) -> Rollout:
        """One episode (or ``steps`` steps) in every copy; seeded by (seed, round)."""
        game = self.game
        T = steps or game.episode_length
        rng = np.random.default_rng([self.seed, server_round])
        obs = game.reset(seed=int(rng.integers(2**31)))
        B, N, d = obs.shape
        out_obs = np.zeros((T + 1, B, N, d), np.float32)
        actions = np.zeros((T, B, N), np.int64)
        logp = np.zeros((T, B, N), np.float32)
        rewards = np.zeros((T, B, N), np.float32)
        terminated = np.zeros((T, B, N), bool)
        mask = np.zeros((T, B, N), np.float32)
        alive = np.ones((B, N), bool)
        out_obs[0] = obs
        for t in range(T):
            logits = self.policies.logits(torch.from_numpy(obs).transpose(0, 1))  # [N, B, A]
            logprobs = torch.log_softmax(logits, -1).transpose(0, 1).numpy()  # [B, N, A]
            u = rng.random((B, N, 1))
            a = (np.cumsum(np.exp(logprobs), -1) < u).sum(-1).clip(max=logprobs.shape[-1] - 1)
            obs, r, term, trunc = game.step(a)
            actions[t], out_obs[t + 1] = a, obs
            logp[t] = np.take_along_axis(logprobs, a[..., None], -1)[..., 0]
            rewards[t] = r * alive
            mask[t] = alive
            terminated[t] = term & alive
            alive = alive & ~term
            if not alive.any() or trunc.all():
                T = t + 1
                break
        state = np.stack([game.state(o) for o in out_obs[: T + 1]])
        return Rollout(out_obs[: T + 1], state, actions[:T], logp[:T], rewards[:T], terminated[:T], mask[:T])
