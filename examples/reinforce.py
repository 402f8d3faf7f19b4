"""A learner from outside the package: REINFORCE with a mean baseline (Williams 1992).

    python run_sim.py --env matthew --strategy fedavg --learner examples.reinforce:Reinforce

The policy is the package's network for the observation space (clients/networks.py: an
MLP, a CNN for images), started from the run's common initialisation, so federations can
average, mix and pull it; its outputs are logits (policy kind ``softmax``). Each round:
discounted returns-to-go of the agent's own experience, minus their mean, weight the
log-probabilities of the actions taken; one Adam step. Hyperparameters: ``config_class``
(its defaults; the learner has no flags of its own).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from clients.learner import Learner, restore, snapshot
from clients.networks import initial_network
from clients.policies import SOFTMAX


@dataclass
class ReinforceConfig:
    lr: float = 0.01
    gamma: float = 0.95


class Reinforce(Learner):
    name, kind = "reinforce", SOFTMAX
    config_class = ReinforceConfig

    def __init__(self, space, num_actions, cfg: ReinforceConfig, net, seed, agent):
        self.cfg = cfg
        self.policy = self.policy_network(space, num_actions, net, seed)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr)

    @classmethod
    def policy_network(cls, space, num_actions, net, seed):
        return initial_network(space, num_actions, net, seed)  # the same start for every agent

    def train(self, exp, anchors, seed):
        returns, g = np.zeros_like(exp.rewards), np.zeros(exp.rewards.shape[1], np.float32)
        for t in reversed(range(len(exp.rewards))):  # returns-to-go, 0 after the episode ends
            g = exp.rewards[t] + self.cfg.gamma * g * (1.0 - exp.terminated[t])
            returns[t] = g
        mask = torch.as_tensor(exp.mask)
        ret = torch.as_tensor(returns)
        advantage = ret - (ret * mask).sum() / mask.sum().clamp(min=1.0)
        logits = self.policy(torch.as_tensor(exp.obs[:-1]))
        logp = torch.log_softmax(logits, -1).gather(-1, torch.as_tensor(exp.actions)[..., None])[..., 0]
        loss = -(logp * advantage * mask).sum() / mask.sum().clamp(min=1.0)
        if anchors.in_loss:  # a federation's pull inside the loss (FPF's anchor-step adam)
            loss = loss + anchors.penalty(list(self.policy.named_parameters()))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if anchors.per_step:  # ... or as a plain step after the update (anchor-step sgd)
            anchors.pull(list(self.policy.named_parameters()), self.cfg.lr)
        return {"pg_loss": loss.item(), "num-examples": float(mask.sum())}

    def state_dict(self) -> dict:
        return snapshot(self, "policy", "optimizer")

    def load_state_dict(self, state: dict) -> None:
        restore(self, state)
