"""A team's trained policies as one file, and acting with them: a *joint policy*.

Every run leaves ``OUT/policies.pt``: each agent's last acting policy (the parameters it
reported), the learner and network sizes that built them, and the game they were trained
on. A mediator that acts through trained policies (the Pareto and punishing mediators of
sequential games, strategies/policy_mediator.py) loads such a file; the file is the
only thing it knows of the agents who made it.

The file is a ``torch.save`` of a plain dict::

    {"format": 1, "env": str, "agents": N, "learner": str, "kind": str,
     "num_actions": A, "observation_shape": [...], "net": {hidden, layers, channels},
     "policies": [ {parameter name: numpy array}, ... one per agent ]}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from flwr.app import Array, ArrayRecord

from clients import learners
from clients.networks import NetworkConfig
from clients.policies import SOFTMAX, StackedPolicies, act

FORMAT = 1


def save(path: str | Path, env: str, learner: str, num_actions: int, observation_space, net: NetworkConfig,
         records: Sequence[ArrayRecord | dict[str, np.ndarray]]) -> None:
    """Write the agents' acting policies (one per agent, in agent order: a record, or its
    arrays by name) to ``path`` atomically. The arrays are written as tensors sharing their
    memory (torch.save writes a tensor's storage straight to the file, where it would pickle
    a numpy array in memory first), so many agents' policies are not held twice."""
    path = Path(path)
    policies = [{k: torch.from_numpy(np.ascontiguousarray(v.numpy() if isinstance(v, Array) else v))
                 for k, v in r.items()} for r in records]
    data = {"format": FORMAT, "env": env, "agents": len(records), "learner": learner,
            "kind": learners.learner_class(learner).kind, "num_actions": int(num_actions),
            "observation_shape": list(observation_space.shape), "net": asdict(net), "policies": policies}
    tmp = path.with_suffix(".tmp")
    torch.save(data, tmp)
    tmp.replace(path)


class JointPolicy:
    """N trained policies of one learner, acting together on the agents' observations.

    Softmax policies (PPO) sample with the caller's uniforms; ε-greedy ones (DQN, tabular
    Q) act greedily, as a trained policy handed to a mediator should.
    """

    def __init__(self, path: str | Path, env: str, agents: int, num_actions: int, observation_space):
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"joint policy {path} does not exist (every run writes OUT/policies.pt)")
        try:
            data = torch.load(path, weights_only=False)
        except Exception as err:  # a file torch cannot read: say so, not how pickle failed
            raise ValueError(f"{path} is not a joint-policy file (OUT/policies.pt of a run): torch cannot load it "
                             f"({type(err).__name__})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path} is not a joint-policy file (OUT/policies.pt of a run)")
        expected = {"env": env, "agents": agents, "num_actions": num_actions,
                    "observation_shape": list(observation_space.shape)}
        for key, want in expected.items():
            if data[key] != want:
                raise ValueError(f"joint policy {path} was trained with {key}={data[key]}, this run has {want} "
                                 "(train it on the same game, team size and observation, without delegation)")
        self.path, self.learner, self.kind = path, data["learner"], data["kind"]
        template = learners.learner_class(self.learner).policy_network(
            observation_space, num_actions, NetworkConfig(**data["net"]), 0)
        records = [ArrayRecord({k: Array(np.asarray(v)) for k, v in p.items()}) for p in data["policies"]]
        self.policies = StackedPolicies(template, records)

    def act(self, obs: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Actions ``[B, N]`` for observations ``obs [B, N, ...]`` and uniforms ``u [B, N]``."""
        out = self.policies(torch.from_numpy(np.ascontiguousarray(obs.swapaxes(0, 1))))  # [N, B, A]
        if self.kind == SOFTMAX:
            a, _ = act(self.kind, out, 0.0, torch.from_numpy(u.T.copy()))
        else:
            a = out.argmax(-1)
        return a.T.numpy().astype(np.int64)
