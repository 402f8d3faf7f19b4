#!/usr/bin/env python
"""Every agent's PPO update of a round, stacked into one pass: the in-process reference.

:class:`StackedPPO` does for ``N`` agents exactly what ``N`` calls of
``PPOLearner.train(exp_i, Anchors(), seed_i)`` do (no anchors: independent learners, or
the agents' own step of a federation before its pull), but with the ``N`` actors and
``N`` critics held as stacked parameters ``[N, ...]`` and run together:

- forward: ``torch.func.vmap`` over ``torch.func.functional_call`` of the original
  module (one batched matmul per layer for all agents), or for plain tanh MLPs (the
  feature-vector networks) the same function hand-stacked as ``baddbmm`` + ``tanh_``;
- backward: one ``backward()`` of the *sum* of the agents' losses. The agents'
  parameters are disjoint, so the gradient of the sum with respect to agent ``i``'s
  slice is agent ``i``'s own gradient;
- gradient clipping per agent, separately for actor and critic, with the semantics of
  ``nn.utils.clip_grad_norm_`` (``scale = min(1, max_norm / (norm + 1e-6))``);
- one ``torch.optim.Adam`` (``eps=1e-5``, one group per network so ``lr_actor`` and
  ``lr_critic`` may differ) over the stacked tensors. Adam is elementwise, so this
  equals ``N`` per-agent Adams with the same learning rate (all agents step together,
  so their step counts agree).

Every agent keeps its own minibatch order: ``torch.randperm(n, generator=gen_i)``
with ``gen_i = torch.Generator().manual_seed(seed_i)``, in the same epoch order as
``PPOLearner.train``. Stacking needs the same number of live samples ``n`` for every
agent (true whenever nothing terminates, e.g. the Matthew Effect); otherwise
:meth:`StackedPPO.train` raises ``ValueError``.

Timing demo (the default workload: 10 agents, hidden 256, 2 layers, T=200, B=16,
4 epochs, minibatch 1024, 2 torch threads)::

    python benchmarks/stacked_ppo.py [--agents 10] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clients.experience import Experience  # noqa: E402
from clients.ppo import PPOConfig, gae  # noqa: E402

STAT_KEYS = ("pg_loss", "v_loss", "entropy", "approx_kl")


class StackedPPO:
    """``N`` agents' actors, critics and one Adam, trained in one stacked pass.

    ``actors`` and ``critics`` are modules of identical architecture, as
    ``clients.networks.network`` builds them (MLP, one-hot MLP or CNN: anything
    ``torch.func.vmap`` can run, without buffers); their parameters are copied, the
    modules themselves are not changed.

    ``impl`` chooses the stacked forward: ``"vmap"`` (``torch.func.vmap`` over
    ``functional_call`` of the original module; works for every network), ``"bmm"``
    (hand-stacked ``baddbmm`` + in-place ``tanh_``; only for plain ``Linear``/``Tanh``
    MLPs, the feature-vector networks) or ``"auto"`` (``"bmm"`` where it applies,
    else ``"vmap"``). Both compute the same function; ``"bmm"`` fuses the bias add into
    the matmul and saves one activation-sized allocation per hidden layer.
    """

    def __init__(self, actors: Sequence[nn.Module], critics: Sequence[nn.Module], cfg: PPOConfig,
                 impl: str = "auto"):
        if len(actors) == 0 or len(actors) != len(critics):
            raise ValueError(f"need as many actors as critics (got {len(actors)} and {len(critics)})")
        if impl not in ("auto", "vmap", "bmm"):
            raise ValueError(f"impl must be 'auto', 'vmap' or 'bmm', got {impl!r}")
        for kind, modules in (("actor", actors), ("critic", critics)):
            shapes = [(repr(m), [(k, tuple(v.shape)) for k, v in m.state_dict().items()]) for m in modules]
            if any(s != shapes[0] for s in shapes):
                raise ValueError(f"every {kind} must have the same architecture")
            if any(len(list(m.buffers())) for m in modules):
                raise ValueError(f"{kind} modules with buffers are not supported")
        self.cfg = cfg
        self.n_agents = len(actors)
        self.actor_params = self._stack(actors)
        self.critic_params = self._stack(critics)
        self._actor = self._forward(actors[0], impl)
        self._critic = self._forward(critics[0], impl)
        self.impl = "bmm" if all(isinstance(f, _StackedMLP) for f in (self._actor, self._critic)) else "vmap"
        self.opt = torch.optim.Adam(
            [{"params": list(self.actor_params.values()), "lr": cfg.lr_actor},
             {"params": list(self.critic_params.values()), "lr": cfg.lr_critic}], eps=1e-5)

    @staticmethod
    def _forward(module: nn.Module, impl: str):
        """The stacked forward ``(params [N, ...], x [N, ..., d]) -> [N, ..., out]`` of ``module``."""
        layers = _StackedMLP.layers(module)
        if impl == "bmm" and layers is None:
            raise ValueError(f"impl='bmm' needs a plain Linear/Tanh MLP, got {module}")
        if impl != "vmap" and layers is not None:
            return _StackedMLP(layers)
        base = copy.deepcopy(module).to("meta")  # stateless: only its forward code is used
        return vmap(lambda p, x: functional_call(base, p, (x,)))

    @staticmethod
    def _stack(modules: Sequence[nn.Module]) -> dict[str, torch.Tensor]:
        params, _ = stack_module_state(list(modules))
        # stack_module_state already returns fresh leaves; make sure of it (and of contiguity).
        return {k: v.detach().contiguous().requires_grad_(True) for k, v in params.items()}

    @classmethod
    def from_learners(cls, learners: Sequence, cfg: PPOConfig | None = None, impl: str = "auto") -> "StackedPPO":
        """Stack ``PPOLearner``s' actors and critics, and their Adam states if they have any.

        Adam states are carried over only if every learner has taken the same number of
        steps (as all agents of a run have); a learner that never stepped has no state.
        """
        stacked = cls([lr.actor for lr in learners], [lr.critic for lr in learners], cfg or learners[0].cfg, impl)
        states = [(lr.opt_actor.state_dict()["state"], lr.opt_critic.state_dict()["state"]) for lr in learners]
        if not any(a or c for a, c in states):
            return stacked
        steps = {float(s["step"]) for a, c in states for group in (a, c) for s in group.values()}
        if len(steps) != 1 or any(len(a) != len(stacked.actor_params) or len(c) != len(stacked.critic_params)
                                  for a, c in states):
            raise ValueError("the learners' Adam states differ in step count; cannot stack them")
        (step,) = steps
        for g, params in enumerate((stacked.actor_params, stacked.critic_params)):
            for j, p in enumerate(params.values()):
                stacked.opt.state[p] = {
                    "step": torch.tensor(step),
                    "exp_avg": torch.stack([s[g][j]["exp_avg"] for s in states]).contiguous(),
                    "exp_avg_sq": torch.stack([s[g][j]["exp_avg_sq"] for s in states]).contiguous(),
                }
        for lr, group in zip((learners[0].opt_actor, learners[0].opt_critic), stacked.opt.param_groups):
            group["lr"] = lr.param_groups[0]["lr"]
        return stacked

    def scale_lr(self, scale: float) -> None:
        """Set the learning rates to ``scale`` times the configured ones (as PPOLearner.scale_lr)."""
        for group, lr in zip(self.opt.param_groups, (self.cfg.lr_actor, self.cfg.lr_critic)):
            group["lr"] = lr * scale

    def actors(self) -> list[dict[str, torch.Tensor]]:
        """Each agent's actor state_dict (parameter names as in the original module)."""
        return self._unstack(self.actor_params)

    def critics(self) -> list[dict[str, torch.Tensor]]:
        """Each agent's critic state_dict (parameter names as in the original module)."""
        return self._unstack(self.critic_params)

    def _unstack(self, params: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return [{k: v[i].detach().clone() for k, v in params.items()} for i in range(self.n_agents)]

    def _batch(self, experiences: Sequence[Experience]):
        """Stacked flat samples [N, n, ...] of the live steps, with GAE from each agent's critic."""
        cfg, N = self.cfg, self.n_agents
        obs = torch.as_tensor(np.stack([e.obs for e in experiences]))  # [N, T+1, B, *obs_shape]
        rewards = torch.as_tensor(np.stack([e.rewards for e in experiences]))  # [N, T, B]
        terminated = torch.as_tensor(np.stack([e.terminated for e in experiences]), dtype=torch.float32)
        keep = torch.as_tensor(np.stack([e.mask for e in experiences])).reshape(N, -1) > 0
        counts = keep.sum(1)
        if bool((counts != counts[0]).any()):
            raise ValueError("StackedPPO needs the same number of live samples for every agent, got "
                             f"{counts.tolist()} (an episode terminated early); train agents one by one instead")
        n = int(counts[0])
        with torch.no_grad():
            values = self._critic(self.critic_params, obs).squeeze(-1)  # [N, T+1, B]
            # gae runs over time (first axis) and broadcasts over the rest: agents and copies at once
            adv, returns = gae(rewards.transpose(0, 1), values.transpose(0, 1), terminated.transpose(0, 1),
                               cfg.gamma, cfg.gae_lambda)
        shape = obs.shape[3:]
        b_obs = obs[:, :-1].flatten(1, 2)[keep].reshape(N, n, *shape)
        b_act = torch.as_tensor(np.stack([e.actions for e in experiences])).reshape(N, -1)[keep].reshape(N, n)
        b_logp = torch.as_tensor(np.stack([e.logp for e in experiences])).reshape(N, -1)[keep].reshape(N, n)
        b_adv = adv.transpose(0, 1).reshape(N, -1)[keep].reshape(N, n)
        b_ret = returns.transpose(0, 1).reshape(N, -1)[keep].reshape(N, n)
        return b_obs, b_act, b_logp, b_adv, b_ret

    @torch.no_grad()
    def _clip(self, params: dict[str, torch.Tensor]) -> None:
        """clip_grad_norm_ for each agent's slice: total 2-norm over the network's parameters."""
        grads = [p.grad for p in params.values()]
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(self.n_agents, -1), dim=1) for g in grads], 1)
        total = torch.linalg.vector_norm(norms, dim=1)  # [N]
        scale = (self.cfg.max_grad_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))

    def train(self, experiences: Sequence[Experience], seeds: Sequence[int]) -> dict:
        """PPO epochs for every agent: ``PPOLearner.train(experiences[i], Anchors(), seeds[i])``.

        Returns per-agent diagnostics as lists (``pg_loss``, ``v_loss``, ``entropy``,
        ``approx_kl``: means over the updates, as PPOLearner reports), ``train_s`` for the
        whole stacked update, ``optimizer_steps`` (cumulative Adam steps) and
        ``num-examples`` (samples per agent).
        """
        if len(experiences) != self.n_agents or len(seeds) != self.n_agents:
            raise ValueError(f"need one experience and one seed per agent ({self.n_agents})")
        cfg, N, start = self.cfg, self.n_agents, time.perf_counter()
        b_obs, b_act, b_logp, b_adv, b_ret = self._batch(experiences)
        n = b_obs.shape[1]
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        rows = torch.arange(N)[:, None]
        stats = torch.zeros(len(STAT_KEYS), N)
        n_updates = 0
        for _ in range(cfg.epochs):
            perms = torch.stack([torch.randperm(n, generator=g) for g in gens])  # [N, n]
            for idx in perms.split(cfg.minibatch, dim=1):
                mb_obs = b_obs[rows, idx]  # [N, m, *obs_shape]: agent i's minibatch in row i
                logits = self._actor(self.actor_params, mb_obs)  # [N, m, A]
                # Categorical(logits=...) normalises to log-softmax; log_prob gathers, entropy = -Σ p·log p
                logp_all = torch.log_softmax(logits, -1)
                logratio = logp_all.gather(-1, b_act[rows, idx][..., None]).squeeze(-1) - b_logp[rows, idx]
                ratio = logratio.exp()
                mb_adv = b_adv[rows, idx]
                mb_adv = (mb_adv - mb_adv.mean(1, keepdim=True)) / (mb_adv.std(1, unbiased=False, keepdim=True) + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean(1)
                entropy = -(logp_all.exp() * logp_all).sum(-1).mean(1)
                values = self._critic(self.critic_params, mb_obs).squeeze(-1)
                v_loss = 0.5 * ((values - b_ret[rows, idx]) ** 2).mean(1)
                loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss  # [N]
                self.opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                self._clip(self.actor_params)
                self._clip(self.critic_params)
                self.opt.step()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean(1)
                    stats += torch.stack([pg_loss, v_loss, entropy, approx_kl]).detach()
                n_updates += 1
        stats = stats / max(n_updates, 1)
        out: dict = {k: stats[j].tolist() for j, k in enumerate(STAT_KEYS)}
        out["train_s"] = time.perf_counter() - start
        first = next(iter(self.actor_params.values()))
        out["optimizer_steps"] = float(self.opt.state[first]["step"]) if first in self.opt.state else 0.0
        out["num-examples"] = float(n)
        return out


class _StackedMLP:
    """Hand-stacked forward of ``N`` tanh MLPs: ``baddbmm`` per layer, ``tanh_`` in place.

    The same function as ``vmap(functional_call(mlp))``: ``x @ W.T + b`` then ``tanh``.
    In-place ``tanh_`` is legal under autograd here because ``baddbmm``'s backward needs
    its inputs, not its output.
    """

    def __init__(self, layers: list[tuple[str, str]]):
        self.names = layers

    @staticmethod
    def layers(module: nn.Module) -> list[tuple[str, str]] | None:
        """``[(weight, bias) names]`` if ``module`` is Linear, Tanh, ..., Linear; else None."""
        if not isinstance(module, nn.Sequential) or len(module) % 2 == 0:
            return None
        kinds = [nn.Linear if i % 2 == 0 else nn.Tanh for i in range(len(module))]
        if any(type(m) is not k for m, k in zip(module, kinds)) or any(m.bias is None for m in module[::2]):
            return None
        return [(f"{i}.weight", f"{i}.bias") for i in range(0, len(module), 2)]

    def __call__(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        n, lead = x.shape[0], x.shape[1:-1]
        h = x.reshape(n, -1, x.shape[-1])
        for j, (w, b) in enumerate(self.names):
            h = torch.baddbmm(params[b].unsqueeze(1), h, params[w].transpose(1, 2))
            if j < len(self.names) - 1:
                h = h.tanh_()
        return h.reshape(n, *lead, h.shape[-1])


def demo_experiences(n_agents: int, T: int, B: int, obs_dim: int, num_actions: int, seed: int = 0) -> list[Experience]:
    """Random experience of the given shape (nothing terminates; behaviour log-probs of a fixed softmax)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_agents):
        logits = rng.normal(size=(T, B, num_actions))
        logp_all = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        actions = rng.integers(0, num_actions, (T, B))
        out.append(Experience(
            obs=rng.normal(size=(T + 1, B, obs_dim)).astype(np.float32),
            actions=actions.astype(np.int64),
            logp=np.take_along_axis(logp_all, actions[..., None], -1)[..., 0].astype(np.float32),
            rewards=rng.normal(size=(T, B)).astype(np.float32),
            terminated=np.zeros((T, B), dtype=bool),
            mask=np.ones((T, B), dtype=np.float32)))
    return out


def main() -> None:
    from gymnasium import spaces

    from clients.anchors import Anchors
    from clients.networks import NetworkConfig
    from clients.ppo import PPOLearner

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", type=int, default=10)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (after one untimed warm-up round)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg, net = PPOConfig(), NetworkConfig()
    obs_dim, num_actions = 6, 5
    space = spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    exps = demo_experiences(args.agents, args.steps, args.batch, obs_dim, num_actions)
    learners = [PPOLearner(space, num_actions, cfg, net, seed=0, agent=i) for i in range(args.agents)]
    stacked = {impl: StackedPPO.from_learners(learners, impl=impl) for impl in ("vmap", "bmm")}

    def loop(seeds):
        for learner, exp, s in zip(learners, exps, seeds):
            learner.train(exp, Anchors(), seed=s)

    runs = {f"loop of {args.agents} PPOLearner.train": loop,
            **{f"StackedPPO.train (impl={k})": (lambda seeds, m=m: m.train(exps, seeds)) for k, m in stacked.items()}}
    times: dict[str, list[float]] = {name: [] for name in runs}
    load_before = os.getloadavg()[0]
    for rnd in range(args.repeats + 1):  # round 0 warms up; all run each round, so they share the machine's load
        for name, run in runs.items():
            t = time.perf_counter()
            run([rnd] * args.agents)  # bench_round's convention: seed = round for every agent
            if rnd > 0:
                times[name].append(time.perf_counter() - t)
    print(f"{args.agents} agents, hidden {net.hidden} x {net.layers}, T={args.steps}, B={args.batch}, "
          f"{cfg.epochs} epochs, minibatch {cfg.minibatch}, {torch.get_num_threads()} torch threads, "
          f"{args.repeats} timed rounds; 1-min load average before the run {load_before:.1f} on {os.cpu_count()} CPUs "
          "(above ~0.5, other processes share the cores and the times, the loop's most, are inflated)")
    base = np.median(times[next(iter(runs))]), min(times[next(iter(runs))])
    for name, ts in times.items():
        print(f"  {name:32s} median {np.median(ts):.3f} s, min {min(ts):.3f} s per round; "
              f"speed-up vs loop: {base[0] / np.median(ts):.2f}x (median), {base[1] / min(ts):.2f}x (min)")
    for k, m in stacked.items():
        diff = max(float((got[n] - lr.actor.state_dict()[n]).abs().max())
                   for got, lr in zip(m.actors(), learners) for n in got)
        print(f"  impl={k}: max |actor parameter - loop's| after {args.repeats + 1} rounds: {diff:.1e}")


if __name__ == "__main__":
    main()
