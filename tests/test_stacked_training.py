"""Agents trained stacked (clients/stacking.py) equal agents trained one by one.

Tolerance (the learners' ``train_stacked`` docstrings): fp32 on the CPU, every parameter
(and Adam moment) within 1e-5 absolute of the separate updates' after two rounds of
updates; diagnostics within 1e-5 relative. The same seed gives bit-identical results run
to run on the stacked path.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from gymnasium import spaces

from clients import stacking
from clients.anchors import Anchors
from clients.dqn import DQNConfig, DQNLearner
from clients.experience import Experience
from clients.networks import NetworkConfig
from clients.ppo import PPOConfig, PPOLearner
from clients.qtable import QTableConfig, QTableLearner

ACTIONS, T, B, N = 3, 10, 4, 3
BOX = spaces.Box(-1.0, 1.0, (4,), np.float32)
IMAGE = spaces.Box(0, 255, (5, 5, 2), np.uint8)
NET = NetworkConfig(hidden=8, layers=2, channels=2, init_weights="per-agent")  # each agent its own weights


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def experience(space: spaces.Space, seed: int, dead_after: int | None = None) -> Experience:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(T, B, ACTIONS))
    logp_all = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    actions = rng.integers(0, ACTIONS, (T, B))
    if isinstance(space, spaces.Box) and space.dtype == np.uint8:
        obs = rng.integers(0, 256, (T + 1, B, *space.shape)).astype(np.uint8)
    else:
        obs = rng.uniform(-1, 1, (T + 1, B, *space.shape)).astype(np.float32)
    mask = np.ones((T, B), np.float32)
    terminated = np.zeros((T, B), bool)
    if dead_after is not None:
        terminated[dead_after, 0] = True
        mask[dead_after + 1:, 0] = 0.0
    return Experience(obs=obs, actions=actions.astype(np.int64),
                      logp=np.take_along_axis(logp_all, actions[..., None], -1)[..., 0].astype(np.float32),
                      rewards=rng.normal(size=(T, B)).astype(np.float32), terminated=terminated, mask=mask)


def ppo(space=BOX, n=N):
    cfg = PPOConfig(minibatch=8, epochs=3)  # 40 samples: 5 minibatches per epoch
    return [PPOLearner(space, ACTIONS, cfg, NET, seed=100 + i, agent=i) for i in range(n)]


def dqn(space=BOX, n=N):
    cfg = DQNConfig(batch=8, updates=15, buffer=60, tau=0.1)
    return [DQNLearner(space, ACTIONS, cfg, NET, seed=100 + i, agent=i) for i in range(n)]


def networks(learner) -> list[torch.nn.Module]:
    return [learner.actor, learner.critic] if isinstance(learner, PPOLearner) else [learner.policy, learner.target]


def optimisers(learner) -> list[torch.optim.Optimizer]:
    return [learner.opt_actor, learner.opt_critic] if isinstance(learner, PPOLearner) else [learner.opt]


def rounds(group, space, mode, n_rounds=2, anchors=None) -> list[list[dict]]:
    """``n_rounds`` rounds of training for the group; every round's diagnostics."""
    out = []
    for rnd in range(n_rounds):
        jobs = [stacking.Job(lr, experience(space, 10 * rnd + i), anchors[i] if anchors else Anchors(), 7 * rnd + i)
                for i, lr in enumerate(group)]
        out.append(stacking.train_all(jobs, mode))
    return out


def assert_close_learners(got, want, atol=1e-5):
    for g, w in zip(got, want):
        for gm, wm in zip(networks(g), networks(w)):
            for (k, a), (_, b) in zip(gm.state_dict().items(), wm.state_dict().items()):
                assert (a - b).abs().max().item() <= atol, k
        for go, wo in zip(optimisers(g), optimisers(w)):
            for ps, qs in zip(go.state.values(), wo.state.values()):
                assert float(ps["step"]) == float(qs["step"])
                for k in ("exp_avg", "exp_avg_sq"):
                    assert (ps[k] - qs[k]).abs().max().item() <= atol


def assert_close_stats(got, want, keys):
    for g_round, w_round in zip(got, want):
        for g, w in zip(g_round, w_round):
            for k in keys:
                assert g[k] == pytest.approx(w[k], rel=1e-5, abs=1e-6), k


def moved(before, after) -> float:
    return max((a - b).abs().max().item() for m0, m1 in zip(networks(before), networks(after))
               for a, b in zip(m0.parameters(), m1.parameters()))


PPO_STATS = ("pg_loss", "v_loss", "entropy", "approx_kl", "prox", "optimizer_steps", "num-examples")
DQN_STATS = ("td_loss", "q_mean", "q_grad_norm", "epsilon", "buffer_size", "optimizer_steps", "num-examples")


@pytest.mark.parametrize("make, space, keys", [(ppo, BOX, PPO_STATS), (ppo, IMAGE, PPO_STATS),
                                               (dqn, BOX, DQN_STATS), (dqn, IMAGE, DQN_STATS)],
                         ids=["ppo-mlp", "ppo-cnn", "dqn-mlp", "dqn-cnn"])
def test_stacked_equals_separate_updates(make, space, keys):
    stacked, separate = make(space), make(space)
    start = copy.deepcopy(separate)
    got = rounds(stacked, space, "auto")
    want = rounds(separate, space, "off")
    assert moved(start[0], separate[0]) > 1e-3  # the updates did something
    assert_close_learners(stacked, separate)
    assert_close_stats(got, want, keys)
    # and the stacked path really ran: it reports the group's time shared equally
    assert len({s["train_s"] for s in got[0]}) == 1


def test_ppo_round_anchors_report_the_same_penalty():
    """Anchors pulled once per round (after training) do not stop stacking; ``prox`` is each agent's own."""
    stacked, separate = ppo(), ppo()
    omega = [{k: torch.full_like(v, 0.1 * i) for k, v in lr.actor.state_dict().items()} for i, lr in enumerate(stacked)]
    anchors = [Anchors(omega=o, weight_u=0.5 + i) for i, o in enumerate(omega)]
    got = rounds(stacked, BOX, "auto", anchors=anchors)
    want = rounds(separate, BOX, "off", anchors=anchors)
    assert all(s["prox"] > 0 for s in want[0])
    assert_close_stats(got, want, PPO_STATS)
    assert_close_learners(stacked, separate)


def test_stacked_is_deterministic():
    a, b = ppo(), ppo()
    assert rounds(a, BOX, "auto")[-1][0]["pg_loss"] == rounds(b, BOX, "auto")[-1][0]["pg_loss"]
    for x, y in zip(a, b):
        for p, q in zip(x.actor.parameters(), y.actor.parameters()):
            assert torch.equal(p, q)


def test_what_does_not_stack_trains_alone():
    """Learners that differ (kind, live samples, per-step anchors, plain tables) fall back to
    their own ``train``, and the result is the separate update exactly."""
    first, second = ppo(n=2), dqn(n=1)
    table = QTableLearner(spaces.Discrete(4), ACTIONS, QTableConfig(), NET, seed=0, agent=0)
    assert table.stack_key(experience(spaces.Discrete(4), 0), Anchors()) is None
    ragged = experience(BOX, 1, dead_after=3)  # fewer live samples than agent 0's
    assert first[0].stack_key(experience(BOX, 0), Anchors()) != first[1].stack_key(ragged, Anchors())
    per_step = Anchors(omega={k: v.clone() for k, v in first[0].actor.state_dict().items()}, weight_u=0.1, step="sgd")
    assert first[0].stack_key(experience(BOX, 0), per_step) is None

    class OwnTrain(PPOLearner):  # a learner that changes ``train`` keeps it: it trains alone
        def train(self, exp, anchors, seed):
            return super().train(exp, anchors, seed) | {"extra": 1.0}

    own = OwnTrain(BOX, ACTIONS, PPOConfig(minibatch=8, epochs=3), NET, seed=100, agent=0)
    assert first[0].stack_key(experience(BOX, 0), Anchors()) is not None
    assert own.stack_key(experience(BOX, 0), Anchors()) is None
    reference = copy.deepcopy(first + second)
    jobs = [stacking.Job(first[0], experience(BOX, 0), Anchors(), 1), stacking.Job(first[1], ragged, Anchors(), 2),
            stacking.Job(second[0], experience(BOX, 5), Anchors(), 3)]
    got = stacking.train_all(jobs)
    want = [lr.train(job.exp, Anchors(), seed=job.seed) for lr, job in zip(reference, jobs)]
    for g, w in zip(got, want):
        assert {k: v for k, v in g.items() if k != "train_s"} == {k: v for k, v in w.items() if k != "train_s"}
    for x, y in zip(first + second, reference):
        for p, q in zip(networks(x)[0].parameters(), networks(y)[0].parameters()):
            assert torch.equal(p, q)


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="auto, off"):
        stacking.train_all([], "sometimes")


def in_process_metrics(tmp_path, name, **options) -> list[dict]:
    from federation.config import RunConfig
    from federation.in_process import run_in_process
    from federation.results import read_metrics

    cfg = RunConfig.of(env="matthew", agents=3, rounds=2, batch=2, steps=20, hidden=8, progress=False,
                       out=str(tmp_path / name), **options)
    run_in_process(cfg, checkpoints=False)
    return [{k: v for k, v in row.items() if not k.endswith("_s")} for row in read_metrics(tmp_path / name)]


def assert_same_metrics(got: list[dict], want: list[dict], rel: float = 0.0, abs_: float = 0.0) -> None:
    assert len(got) == len(want) == 2 and got[0].keys() == want[0].keys()
    for g, w in zip(got, want):
        for k in w:
            if isinstance(w[k], float) and rel + abs_ > 0:
                assert g[k] == pytest.approx(w[k], rel=rel, abs=abs_, nan_ok=True), k
            elif not (isinstance(w[k], float) and np.isnan(w[k])):
                assert g[k] == w[k], k


@pytest.mark.parametrize("strategy, learner, options", [
    ("fpf", "ppo", {"ppo_minibatch": 16, "ppo_epochs": 2}), ("independent", "dqn", {"dqn_updates": 10, "dqn_batch": 16})])
def test_in_process_run_stacked_and_devices(tmp_path, strategy, learner, options):
    """A tiny in-process run: ``--stacked auto`` gives the agents-one-by-one metrics within
    1e-4 relative (1e-6 absolute; the games' returns exactly), the same seed the same
    metrics run to run; ``--device auto`` on a machine without a GPU is ``--device cpu``."""
    if torch.cuda.is_available():
        pytest.skip("compares --device auto with cpu on a machine without a GPU")
    run = lambda name, **o: in_process_metrics(tmp_path, name, strategy=strategy, learner=learner,  # noqa: E731
                                               **options, **o)
    before = run("one-by-one", stacked="off", device="cpu")
    stacked = run("stacked", stacked="auto", device="cpu")
    assert_same_metrics(run("one-by-one-auto", stacked="off", device="auto"), before)
    assert_same_metrics(run("stacked-auto", stacked="auto", device="auto"), stacked)
    assert_same_metrics(stacked, before, rel=1e-4, abs_=1e-6)
    assert [r["collective_return"] for r in stacked] == [r["collective_return"] for r in before]
    assert any(stacked[1][k] != before[1][k] for k in stacked[1] if k.startswith("agents_")) or learner == "dqn"


def test_old_config_and_the_default_train_one_by_one():
    """Stacked updates equal the one-by-one ones within 1e-5, not bit for bit: a run opts in
    (--stacked auto); the default and a config.json written before the setting train one by
    one, so they stay bit-identical to Flower's runner and to runs made before."""
    import json

    from federation.config import RunConfig

    data = json.loads(RunConfig.of(stacked="auto").to_json())
    del data["execution"]["stacked"]
    assert RunConfig.from_json(json.dumps(data)).execution.stacked == "off"
    assert RunConfig().execution.stacked == "off"


def test_device_cuda_without_a_gpu_is_refused():
    from federation.config import ConfigError, RunConfig, client_gpus

    assert client_gpus("cpu", 10) == 0.0
    if torch.cuda.is_available():
        assert client_gpus("cuda", 10) == min(1.0, torch.cuda.device_count() / 10)
        return
    assert client_gpus("auto", 10) == 0.0
    with pytest.raises(ConfigError, match="no GPU"):
        RunConfig.of(device="cuda").validated()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
@pytest.mark.parametrize("make, space", [(ppo, BOX), (dqn, IMAGE)], ids=["ppo-mlp", "dqn-cnn"])
def test_stacked_on_the_gpu_equals_the_cpu(make, space):
    """Networks and stacked training on the GPU, replay buffers on the host: the same
    updates as on the CPU within 1e-4 (GPU matmuls reduce in yet another order)."""
    on_gpu, on_cpu = [lr.to("cuda") for lr in make(space)], make(space)
    rounds(on_gpu, space, "auto")
    rounds(on_cpu, space, "off")
    assert all(isinstance(lr.buffer.obs, np.ndarray) for lr in on_gpu if isinstance(lr, DQNLearner))
    for g, c in zip(on_gpu, on_cpu):
        for gm, cm in zip(networks(g), networks(c)):
            for a, b in zip(gm.parameters(), cm.parameters()):
                assert a.device.type == "cuda"
                assert (a.cpu() - b).abs().max().item() <= 1e-4
