"""Several agents trained in one pass: networks and Adam states stacked along a leading agent axis.

When one process holds several agents (the in-process runner), the agents that share a
learner kind, its hyperparameters and its network architecture train together instead of
one after another: each network's parameters become tensors ``[N, ...]`` (the ``N``
agents' copies stacked), the forward is ``torch.func.vmap`` over
``torch.func.functional_call`` of the original module (for plain ``Linear``/``Tanh`` MLPs
the same function as one ``baddbmm`` per layer), and the backward is one ``backward()`` of
the *sum* of the agents' losses: the agents' parameters are disjoint, so the gradient
with respect to agent ``i``'s slice is agent ``i``'s own gradient.

- Gradient clipping is per agent, with ``nn.utils.clip_grad_norm_``'s semantics
  (:meth:`StackedNet.clip_grad_norm_`).
- The optimiser is one ``torch.optim.Adam`` over the stacked tensors, built from the
  agents' own Adams (:func:`stack_adam`) and written back to them (:func:`unstack_adam`).
  Adam is elementwise, so this is ``N`` per-agent Adams provided their learning rates,
  betas, eps and step counts agree (the grouping key of each learner checks that).
- Every agent draws its minibatches from its own generator, seeded as in its own
  ``train``, in the same order; so agent ``i``'s samples are those of its separate update.

What differs from ``N`` separate updates is only the order of floating-point reductions
(a batched matmul blocks its sums differently from ``N`` single ones): the learners'
``train_stacked`` state their tolerance, and tests/test_stacked_training.py holds them
to it. The same seed gives the same result run to run on either path.

A learner opts in with :meth:`clients.learner.Learner.stack_key` and
:meth:`clients.learner.Learner.train_stacked`; every other learner (tables, plug-ins,
mixed learners) trains on its own, as does any agent whose round needs what only the
separate update does (:func:`train_all`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from clients.anchors import Anchors
from clients.experience import Experience

#: the values of the ``--stacked`` setting
MODES = ("auto", "off")


@dataclass
class Job:
    """One agent's training of a round: what ``Learner.train`` receives."""

    learner: Any  # clients.learner.Learner (not imported: the learner module imports this one)
    exp: Experience
    anchors: Anchors
    seed: int


def train_all(jobs: Sequence[Job], mode: str = "auto") -> list[dict[str, float]]:
    """Train every job; return each one's diagnostics, in order.

    ``mode="auto"``: jobs whose learners give the same :meth:`Learner.stack_key` (not
    None) train together in one stacked pass, by groups of at least two; the others, and
    every job with ``mode="off"``, call their learner's own ``train``. Within a stacked
    group ``train_s`` is the group's time shared equally among its agents.
    """
    if mode not in MODES:
        raise ValueError(f"stacked mode must be one of {', '.join(MODES)}, got {mode!r}")
    out: list[dict[str, float] | None] = [None] * len(jobs)
    groups: dict[Any, list[int]] = {}
    for i, job in enumerate(jobs):
        key = job.learner.stack_key(job.exp, job.anchors) if mode == "auto" else None
        if key is None:
            groups[("alone", i)] = [i]
        else:
            groups.setdefault((type(job.learner), key), []).append(i)
    for members in groups.values():
        if len(members) == 1:
            (i,) = members
            out[i] = jobs[i].learner.train(jobs[i].exp, jobs[i].anchors, seed=jobs[i].seed)
            continue
        group = [jobs[i] for i in members]
        start = time.perf_counter()
        stats = type(group[0].learner).train_stacked(group)
        share = (time.perf_counter() - start) / len(group)
        for i, s in zip(members, stats):
            out[i] = s | {"train_s": share}
    return [s for s in out if s is not None]


def adam_key(opt: torch.optim.Optimizer) -> tuple:
    """What must agree between Adams stepped as one: hyperparameters and step count."""
    g = opt.param_groups[0]
    steps = {float(s["step"]) for s in opt.state.values()} or {0.0}
    return (len(opt.param_groups), float(g["lr"]), tuple(g["betas"]), float(g["eps"]), float(g["weight_decay"]),
            bool(g["amsgrad"]), bool(g["maximize"]), tuple(sorted(steps)), len(opt.state))


def architecture(module: nn.Module) -> tuple:
    """The module's structure and parameter shapes, dtypes and device (equal: stackable)."""
    return (repr(module), tuple((k, tuple(v.shape), v.dtype, str(v.device)) for k, v in module.state_dict().items()))


def stackable(module: nn.Module) -> bool:
    """Whether ``vmap(functional_call(module))`` can run it: parameters only, no buffers."""
    return not any(True for _ in module.buffers())


class StackedNet:
    """``N`` modules of one architecture as stacked parameters ``{name: [N, ...]}``.

    ``forward(x)`` maps ``x [N, ..., d]`` to ``[N, ..., out]``, agent ``i``'s input
    through agent ``i``'s parameters. ``trainable=False``: no gradients (target networks).
    """

    def __init__(self, modules: Sequence[nn.Module], trainable: bool = True):
        self.n = len(modules)
        self.names = [name for name, _ in modules[0].named_parameters()]
        stacked, _ = stack_module_state(list(modules))
        self.params = {k: stacked[k].detach().contiguous().requires_grad_(trainable) for k in self.names}
        layers = _mlp_layers(modules[0])
        self._forward: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]
        if layers is not None:
            self._forward = _StackedMLP(layers)
        else:
            base = copy.deepcopy(modules[0]).to("meta")  # stateless: only its forward code is used

            def one(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
                return functional_call(base, p, (x,))

            self._forward = vmap(one)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self.params, x)

    def tensors(self) -> list[torch.Tensor]:
        """The stacked parameters in the modules' ``parameters()`` order (as their optimisers hold them)."""
        return [self.params[k] for k in self.names]

    @torch.no_grad()
    def write_back(self, modules: Sequence[nn.Module]) -> None:
        """Copy agent ``i``'s slice into ``modules[i]``'s parameters (in place: optimisers keep them)."""
        for i, module in enumerate(modules):
            for name, p in module.named_parameters():
                p.copy_(self.params[name][i])

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> None:
        """``nn.utils.clip_grad_norm_(agent i's parameters, max_norm)`` for every agent ``i``:
        the total 2-norm over the agent's gradients, scaled by ``min(1, max_norm / (norm + 1e-6))``."""
        grads = [p.grad for p in self.tensors() if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(self.n, -1), dim=1) for g in grads], 1)
        total = torch.linalg.vector_norm(norms, dim=1)  # [N]
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))

    @torch.no_grad()
    def lerp_(self, online: "StackedNet", tau: float) -> None:
        """θ' <- τθ + (1 - τ)θ' for every agent (``clients.dqn.soft_update``)."""
        for k in self.names:
            self.params[k].lerp_(online.params[k], tau)


def stack_adam(opts: Sequence[torch.optim.Optimizer], stacked: Sequence[torch.Tensor]) -> torch.optim.Adam:
    """One Adam over ``stacked`` (parameter ``j`` of every agent, ``[N, ...]``) that continues
    the agents' own Adams ``opts`` (one parameter group each, equal :func:`adam_key`)."""
    g = opts[0].param_groups[0]
    adam = torch.optim.Adam(list(stacked), lr=g["lr"], betas=g["betas"], eps=g["eps"],
                            weight_decay=g["weight_decay"], foreach=False)
    states = [[o.state.get(p, {}) for p in o.param_groups[0]["params"]] for o in opts]
    for j, p in enumerate(stacked):
        if states[0][j]:
            adam.state[p] = {"step": states[0][j]["step"].clone(),
                             "exp_avg": torch.stack([s[j]["exp_avg"] for s in states]),
                             "exp_avg_sq": torch.stack([s[j]["exp_avg_sq"] for s in states])}
    return adam


def unstack_adam(adam: torch.optim.Adam, stacked: Sequence[torch.Tensor], opts: Sequence[torch.optim.Optimizer]) -> None:
    """Write the stacked Adam's state back into each agent's own Adam (as if it had stepped alone)."""
    for i, opt in enumerate(opts):
        for j, p in enumerate(opt.param_groups[0]["params"]):
            state = adam.state[stacked[j]]
            opt.state[p] = {"step": state["step"].clone(), "exp_avg": state["exp_avg"][i].clone(),
                            "exp_avg_sq": state["exp_avg_sq"][i].clone()}


def prox_stat(nets: StackedNet, anchors: Sequence[Anchors]) -> torch.Tensor:
    """Each agent's ``Anchors.penalty`` of its slice ``[N]`` (a diagnostic: the stacked
    path trains only agents whose anchors are not in the loss)."""
    with torch.no_grad():
        out = torch.zeros(nets.n, device=nets.tensors()[0].device)
        for i, a in enumerate(anchors):
            if a.active:
                out[i] = a.penalty([(k, nets.params[k][i]) for k in nets.names]).to(out.device)
        return out


def _mlp_layers(module: nn.Module) -> list[tuple[str, str]] | None:
    """``[(weight, bias) names]`` if ``module`` is Linear, Tanh, ..., Linear; else None."""
    if not isinstance(module, nn.Sequential) or len(module) % 2 == 0:
        return None
    kinds = [nn.Linear if i % 2 == 0 else nn.Tanh for i in range(len(module))]
    if any(type(m) is not k for m, k in zip(module, kinds)) or any(module[i].bias is None
                                                                   for i in range(0, len(module), 2)):
        return None
    return [(f"{i}.weight", f"{i}.bias") for i in range(0, len(module), 2)]


class _StackedMLP:
    """``N`` tanh MLPs: ``baddbmm`` per layer, ``tanh`` between (``x @ W.T + b``, the function
    ``vmap(functional_call(mlp))`` computes, with the bias add fused into the matmul)."""

    def __init__(self, layers: list[tuple[str, str]]):
        self.names = layers

    def __call__(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        n, lead = x.shape[0], x.shape[1:-1]
        h = x.reshape(n, -1, x.shape[-1])
        for j, (w, b) in enumerate(self.names):
            h = torch.baddbmm(params[b].unsqueeze(1), h, params[w].transpose(1, 2))
            if j < len(self.names) - 1:
                h = h.tanh_()  # baddbmm's backward needs its inputs, not its output
        return h.reshape(n, *lead, h.shape[-1])
