r"""FPF: the Flexible-Participation Federation (Algorithm 1 of "Beyond Mandatory Federations").

Agents choose to join; the federation keeps a utilitarian policy ω and an egalitarian
policy ω̄ and pulls every agent toward them. Per round:

1. ω and ω̄ are sent to the **participants** (``pull="participants"``, the default), or to
   every agent (``pull="everyone"``, an ablation). Algorithm 1's lines 3-5 and the
   authors' code broadcast them to all agents and regularise non-participants too; the
   paper's text says "participating agents regularize their individual egoistic policy
   parameters θ and upload them", and with everyone pulled opting out changes nothing for
   an agent, so the cost of opting out (Figure 3) could not arise. The text wins.
2. Every agent trains on its own experience; a participant is pulled as [FPF Eq. 9] says,
   :math:`\nabla J_i^{ego}(θ) - αλ_u(θ - ω) - αλ_e(θ - \bar ω)`: FPF sends the
   coefficients ``αλ_u`` and ``αλ_e`` (α = ``fed_alpha``, the α of [FPF Eq. 10]). By default
   (``anchor_step="round"``) the agent applies the pull once per round after its own
   training, :math:`θ \leftarrow θ - αλ_u(θ - ω) - αλ_e(θ - \bar ω)`, so θ moves toward ω
   with the same coefficient αλ_u with which [FPF Eq. 10] moves ω toward θ: [FPF Eqs. 9 and 10] are
   the two partial gradients of the same penalty λ_u/2·||θ_i - ω||². (A plain step of
   that gradient after each of the agent's Adam steps, ``anchor_step="sgd"``, multiplies
   the pull by the learning rate a second time: ~3·10⁻⁵ of the distance per round with the
   paper's defaults, so FPF ≈ IPPO by construction.) Stability needs αλ_u + αλ_e ≤ 1.
3. Participants share their trained policy θ̃_i; the federation forms
   :math:`ω_i^{up} = ω - αλ_u(ω - θ̃_i)` ([FPF Eq. 10]) and
   :math:`ω \leftarrow (1-η)ω + η \frac{1}{N_p}\sum_{i∈N_p} ω_i^{up}` ([FPF Eq. 11]),
   dividing by N_p (the authors' code divides by N in one place; that is a bug). The
   coefficient of [FPF Eq. 10] is αλ_u unless ``upload_alpha`` sets it apart from the pull;
   ``upload="raw"`` averages θ̃_i themselves (the authors' classic-games code, with η = 1.5).
   With ``pull_every = k`` the pull and this aggregation happen once per federation event,
   every k episodes (:func:`federation_events`), as the authors' ``fed_epi``.
   [FPF Eq. 10] is computed here from the shared θ̃_i rather than by the agent: the two are
   the same number and reveal the same information.
4. Federated training on the world's data (lines 15-19):
   :math:`ω \leftarrow ω + ηα∇J^{uti}(ω) - ηαλ_e(ω - \bar ω)` and
   :math:`\bar ω \leftarrow \bar ω + α∇[J^{ega}(\bar ω) + λ_h H(π(\bar ω))]`.
   Line 19 writes ``-λ_h H``; [FPF Eq. 7], the objective it optimises, adds ``+λ_h H`` (an
   entropy bonus), and the equations win: we use the bonus. The gradient steps are Adam
   steps of :class:`strategies.federated_policy.FederatedPolicy` with learning rate
   ``η·fed_lr`` for ω and ``fed_lr`` for ω̄.

A non-participant's parameters never reach this class: the round loop removes every
agent's acting weights from the replies and non-participants share nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from logging import INFO

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Message, MetricRecord
from flwr.supercore import log

from clients import protocol
from clients.networks import NetworkConfig, flat
from clients.rollout import Rollout
from strategies.base import FederationStrategy, RunSettings, shared_uploads
from clients.anchors import Anchors
from strategies.federated_policy import (EGALITARIAN, EGALITARIAN_FORMS, OBJECTIVES, PER_STEP_EGALITARIAN, FederatedPolicy,
                                        egalitarian_reward, utilitarian_reward)
from strategies.federated_q import FederatedQ
from strategies.participation import Participation
from strategies.robust import Aggregator, Mean, make_aggregator
from typing import Any, ClassVar
from clients.settings import ConfigError, Settings, setting


@dataclass
class FPFConfig(Settings):
    """FPF / D&F in the paper's notation. Defaults of the pull from the pull sweep
    (docs/results/pull_sweep/README.md): αλ_u = 0.01, αλ_e = 0.0025, so λ_u > 2√2·λ_e [FPF Thm. 1]."""

    title: ClassVar[str] = "FPF and D&F (fpf, dnf)"

    lambda_u: float = setting(0.1, "λ_u of [FPF Eq. 5]: the pull toward the utilitarian policy ω", ge=0.0, le=1e6)
    lambda_e: float = setting(0.025, "λ_e of [FPF Eq. 5]: the pull toward the egalitarian policy ω̄", ge=0.0, le=1e6)
    lambda_h: float = setting(0.01, "λ_h: the entropy bonus of the egalitarian policy ω̄'s training", ge=0.0, le=1e6)
    eta: float = setting(1.0, "η, the federation's update rate [FPF Eq. 11] (1: plain averaging, > 1 extrapolates)",
                         gt=0.0, le=2.0)
    fed_alpha: float = setting(0.1, "α of [FPF Eqs. 9-10]: the step of the pull and of a participant's upload",
                               ge=0.0, le=1.0)
    fed_lr: float = setting(1e-3, "learning rate of the server's training of ω and ω̄", gt=0.0, le=1.0)
    fed_critic_lr: float = setting(1e-3, "learning rate of the critics of ω and ω̄", gt=0.0, le=1.0)
    fed_updates: int = setting(16, "minibatch steps of ω and ω̄ per round", ge=1, le=1_000_000)
    fed_batch: int = setting(1024, "minibatch size of the server's training of ω and ω̄", ge=1, le=10_000_000)
    anchor_step: str = setting("round", "how the pull is applied: once per round after training (round), after each "
                                        "optimiser step (sgd), or inside the loss (adam; FedProx convention)",
                               choices=Anchors.STEPS)
    pull: str = setting("participants", "who is pulled toward ω and ω̄: the participants (the paper's text) or "
                                        "everyone (ablation)", choices=lambda: PULLS)
    egalitarian: str = setting("return-std", "ω̄'s team reward: variance ([FPF Eq. 3] as written), return-std (the "
                                             "D&F authors' code), min (max-min) or step-std (the authors' SSD code)",
                               choices=EGALITARIAN)
    fed_objective: str = setting("awr", "how ω and ω̄ learn from PPO agents' data: importance-weighted policy "
                                        "gradient (is-pg) or advantage-weighted regression (awr)", choices=OBJECTIVES)
    fed_train: bool = setting(True, "the server trains ω and ω̄ on the world's data ([FPF Alg. 1 lines 17-18]); "
                                    "--no-fed-train: ω is the aggregate of the uploads alone and ω̄ stays where it "
                                    "starts (the authors' MPE code, whose ω's actor loss does not depend on ω; "
                                    "the only choice for agents with continuous actions)")
    fed_conservative: float = setting(0.0, "DQN agents: weight of the conservative (CQL) term of ω's and ω̄'s "
                                           "Q-learning; 0 is plain double DQN", ge=0.0, le=1e6)
    upload: str = setting("eq10", "what a participant's upload puts into [FPF Eq. 11]: eq10 (ω - c(ω - θ̃), "
                                  "[FPF Eq. 10]) or raw (θ̃ itself, the authors' classic-games code)",
                          choices=lambda: UPLOADS)
    upload_alpha: float = setting(-1.0, "the coefficient c of [FPF Eq. 10]'s upload ω - c(ω - θ̃); -1: "
                                        "fed-alpha·lambda-u, the same number as the pull toward ω", ge=-1.0, le=1.0)
    pull_every: int = setting(0, "federation events every k episodes (the authors' fed_epi): the pull and ω's "
                                 "aggregation happen once per event, so k episodes apart; 0: once per round",
                              ge=0, le=10_000_000)
    omega_pull: str = setting("loss", "how ω is pulled toward ω̄ ([FPF Eq. 6]): loss (λ_e/2·||ω - ω̄||² in ω's "
                                      "training) or interpolate (ω <- ω - fed-alpha·lambda-e·(ω - ω̄) after each "
                                      "aggregation, the authors' code)", choices=lambda: OMEGA_PULLS)
    egalitarian_form: str = setting("increments", "how ω̄'s return-std or min reward is spread over the steps: "
                                                  "increments (they sum to the episode's value) or level (the "
                                                  "value so far at every step, the authors' classic-games code)",
                                    choices=EGALITARIAN_FORMS)

    def check(self) -> None:
        if self.anchor_step == "round" and self.fed_alpha * (self.lambda_u + self.lambda_e) > 1:
            raise ConfigError(f"the per-round pull fed-alpha·(lambda-u + lambda-e) = "
                              f"{self.fed_alpha * (self.lambda_u + self.lambda_e):g} must be <= 1 "
                              "(a larger step overshoots the anchors)")
        if self.upload_alpha != -1.0 and self.upload_alpha < 0:
            raise ConfigError(f"--upload-alpha must be -1 (tied to the pull) or in [0, 1], got {self.upload_alpha:g}")
        if self.upload == "raw" and self.upload_alpha != -1.0:
            raise ConfigError("--upload raw uploads θ̃ itself; --upload-alpha applies to --upload eq10 only")
        if self.egalitarian_form == "level" and self.egalitarian in PER_STEP_EGALITARIAN:
            raise ConfigError(f"--egalitarian-form level applies to return-std and min; --egalitarian "
                              f"{self.egalitarian} is already a per-step reward")

    @property
    def upload_coefficient(self) -> float:
        """The c of [FPF Eq. 10]'s ω - c(ω - θ̃): 1 for raw uploads, fed-alpha·lambda-u unless set."""
        if self.upload == "raw":
            return 1.0
        return self.fed_alpha * self.lambda_u if self.upload_alpha == -1.0 else self.upload_alpha


def fpf_upload(omega: list[np.ndarray], theta: list[np.ndarray], alpha: float, lambda_u: float) -> list[np.ndarray]:
    """[FPF Eq. 10]: ω_i^up = ω - αλ_u(ω - θ̃_i), layer by layer."""
    return [w - alpha * lambda_u * (w - t) for w, t in zip(omega, theta)]


def pull_toward(omega: list[np.ndarray], anchor: list[np.ndarray], weight: float) -> list[np.ndarray]:
    """ω <- ω - w(ω - anchor), layer by layer (the authors' pull of ω toward ω̄ after each
    aggregation, ``omega_pull="interpolate"``)."""
    return [w - weight * (w - a) for w, a in zip(omega, anchor)]


def fpf_aggregate(omega: list[np.ndarray], uploads: list[list[np.ndarray]], eta: float,
                  combine=None) -> list[np.ndarray]:
    """[FPF Eq. 11]: ω <- (1-η)ω + η·(1/N_p)Σ_i ω_i^up. No uploads leaves ω unchanged.

    ``combine`` replaces the mean of the uploads (a robust rule, strategies.robust)."""
    if not uploads:
        return [w.copy() for w in omega]
    center = combine(uploads) if combine is not None else [np.mean([u[k] for u in uploads], axis=0)
                                                           for k in range(len(omega))]
    return [(1 - eta) * w + eta * c for w, c in zip(omega, center)]


PULLS: tuple[str, ...] = ("participants", "everyone")
UPLOADS: tuple[str, ...] = ("eq10", "raw")
OMEGA_PULLS: tuple[str, ...] = ("loss", "interpolate")


def federation_events(server_round: int, episodes_per_round: int, every: int) -> int:
    """How many federation events fall in round ``server_round`` (1-based) when one happens
    every ``every`` episodes and a round plays ``episodes_per_round``: the multiples of
    ``every`` among the round's episodes ``(r-1)·B + 1 .. r·B``. ``every = 0``: one per round."""
    if every == 0:
        return 1
    return server_round * episodes_per_round // every - (server_round - 1) * episodes_per_round // every


class FPF(FederationStrategy):
    """Flexible-participation federation with utilitarian and egalitarian anchors."""

    name = "fpf"
    reads = ("fpf", "robust")
    share = protocol.SHARE_PARAMETERS
    mixes_parameters = True
    refuses_learners = ("q-table",)

    def __init__(self, participation, seed: int, init: ArrayRecord, *, space, num_actions: int,
                 state_space, learner: str = "ppo", settings: FPFConfig | None = None, net=None,
                 gamma: float = 0.98, gae_lambda: float = 0.97, aggregator: Aggregator | None = None,
                 episodes_per_round: int = 16, **overrides: Any):
        """``settings``: the FPF group of the configuration (its defaults when None), with
        ``overrides`` of its fields (``lambda_u=1.0``), checked by the group's own ranges;
        ``aggregator``: how [FPF Eq. 11] combines the uploads (strategies.robust; the mean
        by default); ``gamma``, ``gae_lambda``: the agents' learner's, for ω's training;
        ``episodes_per_round``: the world's batch B, to place ``pull_every``'s events."""
        super().__init__(participation, seed)
        s = dataclasses.replace(settings or FPFConfig(), **overrides)
        s.validate()
        self.settings = s
        self.aggregator = aggregator or Mean()
        self.lambda_u, self.lambda_e, self.lambda_h = s.lambda_u, s.lambda_e, s.lambda_h
        self.eta, self.fed_alpha = s.eta, s.fed_alpha
        self.fed_updates, self.fed_batch = s.fed_updates, s.fed_batch
        self.anchor_step, self.pull, self.egalitarian = s.anchor_step, s.pull, s.egalitarian
        self.gamma, self.gae_lambda = gamma, gae_lambda
        self.episodes_per_round = episodes_per_round
        eta, fed_lr, fed_critic_lr = s.eta, s.fed_lr, s.fed_critic_lr
        fed_conservative, fed_objective = s.fed_conservative, s.fed_objective
        if learner in self.refuses_learners:
            raise ValueError(f"{self.name} cannot federate {learner} agents")
        network = net or NetworkConfig()

        def federated(lr: float, seed: int) -> FederatedPolicy | FederatedQ:
            """ω or ω̄: a Q-network for DQN agents, else an actor-critic."""
            if learner == "dqn":
                return FederatedQ(init, lr=lr, seed=seed, space=space, num_actions=num_actions,
                                  state_space=state_space, net=network, critic_lr=fed_critic_lr,
                                  conservative=fed_conservative)
            return FederatedPolicy(init, lr=lr, seed=seed, space=space, num_actions=num_actions,
                                   state_space=state_space, net=network, critic_lr=fed_critic_lr,
                                   objective=fed_objective)

        self.omega = federated(eta * fed_lr, seed + 1)
        self.omega_bar = federated(fed_lr, seed + 2)
        self._omega_bar_record = self.omega_bar.record()
        self._gen = torch.Generator().manual_seed(seed)

    @classmethod
    def check_config(cls, cfg: RunSettings, game) -> None:
        """Agents with continuous actions (ddpg): ω and ω̄ cannot be trained at the server
        (its trainers learn discrete policies), so ``--no-fed-train`` is required."""
        super().check_config(cfg, game)
        if game.continuous and cfg.fpf.fed_train:
            raise ValueError(f"{cls.name} trains ω and ω̄ at the server as discrete policies; with continuous "
                             "actions use --no-fed-train (ω is then the aggregate of the uploads)")

    @classmethod
    def from_config(cls, cfg: RunSettings, game, init: ArrayRecord) -> "FPF":
        learners = cfg.learners()
        cls.check_learners(learners)
        return cls(Participation.from_config(cfg.joining, cfg.agents), cfg.seed, init,
                   space=game.observation_space, num_actions=game.num_actions, state_space=game.state_space,
                   learner=learners[0], settings=cfg.fpf, net=cfg.net,
                   gamma=cfg.dqn.gamma if learners[0] == "dqn" else cfg.ppo.gamma, gae_lambda=cfg.ppo.gae_lambda,
                   aggregator=make_aggregator(cfg.robust), episodes_per_round=cfg.world.batch)

    def events(self, server_round: int) -> int:
        """The federation events of this round (one per round unless ``pull_every`` is set)."""
        return federation_events(server_round, self.episodes_per_round, self.settings.pull_every)

    def instructions(self, agent: int, server_round: int, arrays: ArrayRecord) -> tuple[dict, dict[str, ArrayRecord]]:
        """ω, ω̄ and [FPF Eq. 9]'s pull weights αλ_u, αλ_e, for the agents that are pulled, with
        the number of pulls (``pull-repeats``: the round's federation events); nothing in a
        round without an event."""
        events = self.events(server_round)
        if events == 0 or (self.pull == "participants" and agent not in self.members):
            return {}, {}
        entries = {protocol.PULL_U: self.fed_alpha * self.lambda_u, protocol.PULL_E: self.fed_alpha * self.lambda_e,
                   "anchor-step": self.anchor_step}
        if events > 1:
            entries[protocol.PULL_REPEATS] = events
        return entries, {protocol.OMEGA: arrays, protocol.OMEGA_BAR: self._omega_bar_record}

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        uploads = shared_uploads(replies)
        omega = self.omega.record()
        if self.events(server_round) == 0:  # no federation event this round: ω stays
            return omega, MetricRecord({"uploads": 0})
        keys = list(omega.keys())
        w = [omega[k].numpy() for k in keys]
        ups = [fpf_upload(w, [u[k].numpy() for k in keys], self.settings.upload_coefficient, 1.0) for u in uploads]
        how: dict[str, float] = {}

        def combine(values):
            out, metrics = self.aggregator.aggregate(values)
            how.update(metrics)
            return out

        new = fpf_aggregate(w, ups, self.eta, combine)
        if self.settings.omega_pull == "interpolate":
            bar = [self._omega_bar_record[k].numpy() for k in keys]
            new = pull_toward(new, bar, self.fed_alpha * self.lambda_e)
        record = ArrayRecord({k: Array(v.astype(np.float32)) for k, v in zip(keys, new)})
        return record, MetricRecord({"uploads": len(uploads), **how})

    def federated_training(self, server_round: int, rollout: Rollout, arrays: ArrayRecord) -> tuple[ArrayRecord, dict]:
        if not self.settings.fed_train:  # ω is the aggregate as it is; ω̄ stays at its start
            return arrays, {}
        self.omega.load(arrays)
        uti = self.omega.update(rollout, utilitarian_reward(rollout.rewards), ent_coef=0.0,
                                anchor=self._omega_bar_record,
                                anchor_weight=self.lambda_e if self.settings.omega_pull == "loss" else 0.0,
                                updates=self.fed_updates, batch=self.fed_batch, gamma=self.gamma,
                                gae_lambda=self.gae_lambda, gen=self._gen)
        ega_reward = egalitarian_reward(rollout.rewards, self.egalitarian, self.settings.egalitarian_form)
        ega = self.omega_bar.update(rollout, ega_reward, ent_coef=self.lambda_h,
                                    anchor=None, anchor_weight=0.0,
                                    updates=self.fed_updates, batch=self.fed_batch, gamma=self.gamma,
                                    gae_lambda=self.gae_lambda, gen=self._gen)
        self._omega_bar_record = self.omega_bar.record()
        metrics = {f"omega_{k}": v for k, v in uti.items()} | {f"omega_bar_{k}": v for k, v in ega.items()}
        return self.omega.record(), metrics

    def evaluation_policies(self) -> dict[str, ArrayRecord]:
        return {"omega": self.omega.record(), "omega_bar": self._omega_bar_record}

    def evaluation_metrics(self, policies: dict[str, ArrayRecord]) -> dict[str, float]:
        """``omega_gap``: ||ω - ω̄||²."""
        return {"omega_gap": float(((flat(policies["omega"]) - flat(policies["omega_bar"])) ** 2).sum())}

    def state_dict(self) -> dict:
        return super().state_dict() | {"omega": self.omega.state_dict(), "omega_bar": self.omega_bar.state_dict(),
                                       "generator": self._gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.omega.load_state_dict(state["omega"])
        self.omega_bar.load_state_dict(state["omega_bar"])
        self._omega_bar_record = self.omega_bar.record()
        self._gen.set_state(state["generator"])

    def summary(self) -> None:
        super().summary()
        log(INFO, "\t│\t├── λ_u=%s λ_e=%s λ_h=%s η=%s α=%s", self.lambda_u, self.lambda_e, self.lambda_h,
            self.eta, self.fed_alpha)


class DnF(FPF):
    """D&F (Dong et al. 2024b): FPF with mandatory participation, N_p = N."""

    name = "dnf"
    mandatory = True
