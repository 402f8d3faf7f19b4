"""The agent's half of each strategy: small steps named after the papers' concepts.

The ClientApp applies, in order: what to do *before* training (adopt the global policy,
add the neighbours' mixed update or adopt their mix), the anchors to train with, and what to do *after*
training (mix with the neighbours' parameters, withhold the update, decide whether to
join the next round, and what to share). Each reads only the agent's own learner and what
the strategy sent it.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from clients import protocol
from clients.anchors import Anchors
from clients.attacks import poison
from clients.learner import Learner
from clients.reshaping import JointSteps, ReceivedMechanism, Reshaper
from clients.volunteer import JoinRecord, decide

Params = dict[str, np.ndarray]


def params(module: torch.nn.Module) -> Params:
    return {k: v.detach().cpu().numpy().astype(np.float64) for k, v in module.state_dict().items()}


def set_params(module: torch.nn.Module, values: Params) -> None:
    module.load_state_dict({k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in values.items()})


def distance(a: Params, b: Params) -> float:
    """||a - b|| over all parameters."""
    return float(np.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a)))


def adopt_global_policy(policy: torch.nn.Module, content: RecordDict) -> None:
    """FedAvg: start from the federation's averaged policy."""
    if protocol.REPLACE in content:
        policy.load_state_dict(protocol.record(content, protocol.REPLACE, ArrayRecord).to_torch_state_dict())


def add_neighbour_update(policy: torch.nn.Module, content: RecordDict, config: ConfigRecord) -> None:
    """LMF gradient exchange ([FPF Eq. 14]): θ <- θ + Σ_j c(i,j)Δ_j, before this round's training."""
    mix = protocol.optional_record(content, protocol.MIX, ArrayRecord)
    if mix is not None and config.get("lmf-mode", "") == protocol.SHARE_GRADIENTS:
        set_params(policy, {k: v + mix[k].numpy() for k, v in params(policy).items()})


def adopt_neighbour_mix(policy: torch.nn.Module, content: RecordDict, config: ConfigRecord) -> None:
    """LMF diffusion (adapt, then combine): θ <- Σ_j c(i,j)θ̃_j before this round's training,
    so the agent's own step is taken from the mix (its neighbours' trained parameters θ̃_j)."""
    mix = protocol.optional_record(content, protocol.MIX, ArrayRecord)
    if mix is not None and config.get("lmf-mode", "") == protocol.LMF_DIFFUSION:
        set_params(policy, {k: v.numpy() for k, v in mix.items()})


def step_with_neighbour_gradients(learner: Learner, content: RecordDict, config: ConfigRecord) -> int:
    """LMF as the FPF authors run [FPF Eq. 14]: each neighbour's last gradient (``mix`` keys
    ``"<k>/<parameter>"``) is one more step of the agent's own optimiser, neighbour by
    neighbour in the order k; returns the number of steps taken."""
    mix = protocol.optional_record(content, protocol.MIX, ArrayRecord)
    if mix is None or config.get("lmf-mode", "") != protocol.LMF_GRADIENT_STEPS:
        return 0
    grads: dict[int, Params] = {}
    for key, value in mix.items():
        neighbour, name = key.split("/", 1)
        grads.setdefault(int(neighbour), {})[name] = value.numpy()
    for k in sorted(grads):
        learner.gradient_step(grads[k])
    return len(grads)


def needs_last_gradient(config: ConfigRecord) -> bool:
    """LMF's gradient-steps exchange: the agent uploads the gradient of its last optimiser
    step, which only training on its own (not stacked, clients/stacking.py) leaves."""
    return config.get("lmf-mode", "") == protocol.LMF_GRADIENT_STEPS


def anchors(content: RecordDict, config: ConfigRecord) -> Anchors:
    """FPF / D&F: the anchors ω, ω̄ and the per-step pull weights toward them."""
    omega = protocol.optional_record(content, protocol.OMEGA, ArrayRecord)
    omega_bar = protocol.optional_record(content, protocol.OMEGA_BAR, ArrayRecord)
    return Anchors(omega=None if omega is None else omega.to_torch_state_dict(),
                   omega_bar=None if omega_bar is None else omega_bar.to_torch_state_dict(),
                   weight_u=float(protocol.scalar(config.get(protocol.PULL_U, 0.0))),
                   weight_e=float(protocol.scalar(config.get(protocol.PULL_E, 0.0))),
                   step=str(config.get("anchor-step", "round")),
                   repeats=int(protocol.scalar(config.get(protocol.PULL_REPEATS, 1))))


def reshaper(content: RecordDict, config: ConfigRecord, agent: int) -> Reshaper | None:
    """The mechanism-design mediator in minibatch mode (strategies/md.py): what the agent
    relabels its minibatches with ([MD] Algorithm 1, line 14); None without it."""
    record = protocol.optional_record(content, protocol.MECHANISM, ArrayRecord)
    if record is None:
        return None
    get = lambda key: protocol.scalar(config[key])  # noqa: E731
    mechanism = ReceivedMechanism(record, int(get("md-state-dim")), int(get("md-agents")), int(get("md-actions")),
                                  float(get("md-dropout")), int(get("md-sweeps")), bool(get("md-use-mrp")))
    steps = JointSteps.from_record(protocol.record(content, protocol.JOINT, ArrayRecord))
    return Reshaper(mechanism, agent, steps, eta=float(get("md-eta")), penalty=float(get("md-penalty")),
                    clip_min=float(get("md-clip-min")), clip_max=float(get("md-clip-max")),
                    lambda_=float(get("md-lambda")), denominator=str(get("md-denominator")))


def mix_with_neighbours(policy: torch.nn.Module, content: RecordDict, config: ConfigRecord, update: Params) -> None:
    """LMF parameter exchange ([FPF Eq. 13]): θ <- Σ_j c(i,j)θ_j + Δ_i."""
    mix = protocol.optional_record(content, protocol.MIX, ArrayRecord)
    if mix is not None and config.get("lmf-mode", "") == protocol.SHARE_PARAMETERS:
        set_params(policy, {k: mix[k].numpy() + update[k] for k in update})


def learns(config: ConfigRecord) -> bool:
    """Sequential learning (JAM-QL, strategies/leaders.py): an agent told ``learn = False``
    rests this round: it skips its update and keeps acting with the policy it has."""
    return bool(config.get("learn", True))


def resting() -> dict[str, float]:
    """A resting agent's training statistics."""
    return {"train_s": 0.0, "num-examples": 0.0, "resting": 1.0}


def withhold_update(policy: torch.nn.Module, config: ConfigRecord, before: Params) -> None:
    """LMF gradient exchange: the update travels and comes back mixed, so it is not applied
    (gradient-steps keeps it: only the last gradient travels)."""
    if config["share"] == protocol.SHARE_GRADIENTS and not needs_last_gradient(config):
        set_params(policy, before)


def shared_record(policy: torch.nn.Module, config: ConfigRecord, update: Params) -> ArrayRecord | None:
    """What a participant uploads: its parameters, or only its update (for gradient-steps,
    ``update`` is its last gradient); nothing otherwise."""
    if config["share"] == protocol.SHARE_PARAMETERS:
        return ArrayRecord({k: Array(v.astype(np.float32)) for k, v in params(policy).items()})
    if config["share"] == protocol.SHARE_GRADIENTS:
        return ArrayRecord({k: Array(v.astype(np.float32)) for k, v in update.items()})
    return None


def poison_upload(shared: ArrayRecord, before: Params, config: ConfigRecord, content: RecordDict,
                  seed: int) -> ArrayRecord:
    """An attacker's upload instead of its honest one (clients.attacks), as its attack
    profile (the message's ``attack`` record) says; honest agents' uploads pass unchanged."""
    profile = protocol.optional_record(content, protocol.ATTACK, ConfigRecord)
    kind = "none" if profile is None else str(profile["kind"])
    if profile is None or kind == "none":
        return shared
    anchor = protocol.optional_record(content, protocol.OMEGA, ArrayRecord)
    omega = None if anchor is None else {k: v.numpy() for k, v in anchor.items()}
    gradients = config["share"] == protocol.SHARE_GRADIENTS
    honest = {k: v.numpy().astype(np.float64) for k, v in shared.items()}
    after = {k: before[k] + v for k, v in honest.items()} if gradients else honest
    scale = float(protocol.scalar(profile["scale"]))
    bad = poison(kind, after, before, gradients, scale, np.random.default_rng([seed, 13]), omega)
    return ArrayRecord({k: Array(v) for k, v in bad.items()})


def decide_to_join(config: ConfigRecord, record: JoinRecord, episode_return: float, seed: int) -> bool:
    """Free entry and exit: the agent's own choice for the next round (clients.volunteer)."""
    epsilon, memory = float(protocol.scalar(config["vol-epsilon"])), float(protocol.scalar(config["vol-memory"]))
    return decide(record, episode_return, config["share"] != protocol.SHARE_NONE, epsilon, memory,
                  np.random.default_rng([seed, 11]))[1]
