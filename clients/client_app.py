"""The ClientApp: one egoistic agent that trains its own policy on its own experience.

The agent's learner (actor, critic, optimiser state) lives in ``context.state``, which
Flower keeps per node across messages in simulation and in deployment, where every
message starts a fresh process. Everything else the agent needs arrives in the message
(see clients.protocol): the server is the single source of truth for the configuration.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from clients import protocol
from clients.model import flat, to_record
from clients.ppo import Anchors, PPOConfig, PPOLearner
from clients.volunteer import JoinRecord, decide

app = ClientApp()

STATE_KEY = "learner"
VOLUNTEER_KEY = "volunteer"


@app.query()
def hello(msg: Message, context: Context) -> Message:
    """Tell the server which agent this node plays."""
    agent = protocol.node_agent_id(context.node_config)
    return Message(RecordDict({protocol.CONFIG: ConfigRecord({"agent-id": agent})}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train on the agent's own experience with the anchors the strategy sent."""
    cfg = msg.content[protocol.CONFIG]
    agent = int(cfg["agent-id"])
    own = protocol.node_agent_id(context.node_config)
    if agent != own:
        raise ValueError(f"message for agent {agent} reached the node of agent {own}")
    torch.set_num_threads(int(cfg["torch-threads"]))

    learner = _learner(cfg, context)
    if protocol.REPLACE in msg.content:
        learner.actor.load_state_dict(msg.content[protocol.REPLACE].to_torch_state_dict())
    mode, mix = cfg.get("lmf-mode", ""), msg.content.get(protocol.MIX)
    if mix is not None and mode == protocol.SHARE_GRADIENTS:  # Eq. 14: add the neighbours' mixed update
        _set(learner.actor, {k: v + mix[k].numpy() for k, v in _params(learner.actor).items()})
    omega, omega_bar = msg.content.get(protocol.OMEGA), msg.content.get(protocol.OMEGA_BAR)
    anchors = Anchors(omega=_tensors(omega), omega_bar=_tensors(omega_bar),
                      lambda_u=float(cfg.get("lambda-u", 0.0)), lambda_e=float(cfg.get("lambda-e", 0.0)))
    exp = protocol.unpack_experience(msg.content[protocol.EXPERIENCE])
    seed = int(np.random.SeedSequence([int(cfg["seed"]), int(cfg["server-round"]), agent]).generate_state(1)[0])
    learner.scale_lr(float(cfg.get("lr-scale", 1.0)))

    before = _params(learner.actor)
    stats = learner.train(exp, anchors, seed=seed)
    update = {k: v - before[k] for k, v in _params(learner.actor).items()}
    if mix is not None and mode == protocol.SHARE_PARAMETERS:  # Eq. 13: θ <- Σ_j c(i,j) θ_j + Δ_i
        _set(learner.actor, {k: mix[k].numpy() + update[k] for k in update})
    if cfg["share"] == protocol.SHARE_GRADIENTS:  # the update travels; it comes back mixed
        _set(learner.actor, before)
    context.state[STATE_KEY] = ConfigRecord({"blob": learner.to_bytes()})

    acting = to_record(learner.actor)
    if omega is not None:  # Theorem 1(b) diagnostic: a scalar, not the parameters
        stats["dist_to_omega"] = float(((flat(acting) - flat(omega)) ** 2).sum())
    if cfg.get("voluntary", False):
        stats["join-next"] = float(_decide_to_join(cfg, context, exp, seed))
    content = RecordDict({protocol.ACTING: acting, protocol.METRICS: MetricRecord(stats)})
    if cfg["share"] == protocol.SHARE_PARAMETERS:
        content[protocol.SHARED] = to_record(learner.actor)
    elif cfg["share"] == protocol.SHARE_GRADIENTS:
        content[protocol.SHARED] = ArrayRecord({k: Array(v.astype(np.float32)) for k, v in update.items()})
    return Message(content, reply_to=msg)


def _params(module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().astype(np.float64) for k, v in module.state_dict().items()}


def _set(module, values: dict) -> None:
    module.load_state_dict({k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in values.items()})


def _decide_to_join(cfg: ConfigRecord, context: Context, exp, seed: int) -> bool:
    """Free entry and exit: the agent's own choice for the next round (clients.volunteer)."""
    record = JoinRecord.from_dict(dict(context.state[VOLUNTEER_KEY])) if VOLUNTEER_KEY in context.state else JoinRecord()
    episode_return = float((exp.rewards * exp.mask).sum(axis=0).mean())
    record, join = decide(record, episode_return, cfg["share"] != protocol.SHARE_NONE, float(cfg["vol-epsilon"]),
                          float(cfg["vol-memory"]), np.random.default_rng([seed, 11]))
    context.state[VOLUNTEER_KEY] = ConfigRecord(record.to_dict())
    return join


def _learner(cfg: ConfigRecord, context: Context) -> PPOLearner:
    ppo = PPOConfig(**{k: type(v)(cfg[k.replace("_", "-")]) for k, v in vars(PPOConfig()).items()})
    agent = int(cfg["agent-id"])
    learner = PPOLearner(int(cfg["obs-dim"]), int(cfg["num-actions"]), ppo,
                         policy_seed=int(cfg["seed"]), critic_seed=int(cfg["seed"]) * 1000 + agent + 1)
    if STATE_KEY in context.state:
        learner.load_bytes(context.state[STATE_KEY]["blob"])
    return learner


def _tensors(record) -> dict[str, torch.Tensor] | None:
    return None if record is None else record.to_torch_state_dict()
