"""What FPF's ω and ω̄ do, from a run's checkpoint: returns and, for DQN agents, greedy actions.

    python -m experiments.inspect_omega docs/results/ssd/runs/harvest-5/fpf_seed0

Plays ω, ω̄ (every agent acting with it) and the agents' own last policies on ``--copies``
fresh copies of the run's game, at ε = 0 and at ``--epsilon`` (the agents' exploration),
and prints each one's collective return. With DQN agents it also plays the agents once
more and prints, over the states they visit, how often each action is ω's and ω̄'s greedy
choice against how often the agents take it: a federated Q-network learnt from the
agents' data can prefer actions the data hardly contain (strategies/federated_q.py).
Needs the run's ``checkpoint.pt`` (kept by run_sim.py and the reproduction scripts).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from flwr.app import Array, ArrayRecord

import envs
from clients import learners
from clients.networks import load_record, network
from clients.policies import ActingSpec
from federation.config import RunConfig
from federation.server_app import as_arrays
from federation.world import World


def record(arrays: dict) -> ArrayRecord:
    return ArrayRecord({k: Array(np.asarray(v.numpy() if hasattr(v, "numpy") else v)) for k, v in arrays.items()})


def play(world: World, policies: dict[int, ArrayRecord], spec: ActingSpec, rnd: int):
    for agent, policy in policies.items():
        world.set_acting(agent, policy, spec)
    return world.rollout(rnd)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--copies", type=int, default=32)
    p.add_argument("--epsilon", type=float, default=0.05)
    args = p.parse_args()
    cfg = RunConfig.from_json((args.run / "config.json").read_text())
    state = as_arrays(torch.load(args.run / "checkpoint.pt", weights_only=False))
    if "omega" not in state["strategy"]:
        p.error(f"{args.run} is a {cfg.strategy} run: it has no ω and ω̄")
    learner = cfg.learners()[0]
    value_based = learner == "dqn"
    fed = {name: record(state["strategy"][name]["q"] if value_based else state["strategy"][name]["actor"])
           for name in ("omega", "omega_bar")}
    agents = {a: record(v) for a, v in state["world"]["acting"].items()}
    game = envs.make_batched(cfg.env, cfg.agents, batch_size=args.copies, seed=cfg.seed, **cfg.game_options())
    world = World(game, cfg.learners(), cfg.net, cfg.seed + 104729)
    kind = learners.learner_class(learner).kind
    for eps in (0.0, args.epsilon) if value_based else (0.0,):
        spec = ActingSpec(learner, kind, eps)
        cells = [f"{name} {play(world, dict.fromkeys(range(cfg.agents), policy), spec, 1).returns.sum():.1f}"
                 for name, policy in fed.items()]
        cells.append(f"agents {play(world, agents, spec, 1).returns.sum():.1f}")
        print("collective return" + (f", ε = {eps:g}" if value_based else "") + ": " + ", ".join(cells))
    if not value_based:
        return
    seen = play(world, agents, ActingSpec(learner, kind, args.epsilon), 2)
    T, B, N = seen.actions.shape
    live = np.asarray(seen.mask).reshape(-1) > 0
    obs = torch.as_tensor(seen.obs[:-1].reshape(T * B * N, *seen.obs.shape[3:]))[live]
    taken = np.asarray(seen.actions).reshape(-1)[live]
    q = network(game.observation_space, game.num_actions, cfg.net, out_gain=1.0)
    print("share of the agents' states in which each action is chosen (actions 0..%d):" % (game.num_actions - 1))
    print(f"  {'agents take':18s}" + " ".join(f"{x:5.3f}" for x in np.bincount(taken, minlength=game.num_actions) / len(taken)))
    for name, policy in fed.items():
        load_record(q, policy)
        with torch.no_grad():
            greedy = q(obs).argmax(-1).numpy()
        print(f"  {name + ' greedy':18s}" + " ".join(f"{x:5.3f}" for x in np.bincount(greedy, minlength=game.num_actions) / len(greedy)))


if __name__ == "__main__":
    main()
