"""The DQN learner (clients.dqn) and FPF's server-side Q-networks (strategies.federated_q)."""

import io
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from gymnasium import spaces

from clients import learners
from clients.anchors import Anchors
from clients.dqn import DQNConfig, DQNLearner, ReplayBuffer, double_dqn_target, linear_epsilon
from clients.experience import Experience
from clients.networks import NetworkConfig, Table, to_record
from clients.policies import EPSILON_GREEDY
from strategies.federated_q import FederatedQ, conservative_gap

BOX = spaces.Box(-1.0, 1.0, (4,), np.float32)
IMAGE = spaces.Box(0, 255, (3, 3, 1), np.uint8)
NET = NetworkConfig(hidden=16, layers=1, channels=2)
A = 3


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks: one thread is fastest and does not stall when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def experience(space, T=6, B=2, seed=0, mask=None) -> Experience:
    """A random experience whose reward depends on the action (something to learn)."""
    rng = np.random.default_rng(seed)
    space.seed(seed)
    obs = np.stack([space.sample() for _ in range((T + 1) * B)]).reshape(T + 1, B, *space.shape)
    actions = rng.integers(0, A, (T, B))
    rewards = (actions == 1).astype(np.float32) - 0.5 * (actions == 2)
    terminated = np.zeros((T, B), bool)
    terminated[-1, 0] = True
    mask = np.ones((T, B), np.float32) if mask is None else mask
    return Experience(obs=obs, actions=actions, logp=np.zeros((T, B), np.float32), rewards=rewards.astype(np.float32),
                      terminated=terminated, mask=mask)


def learner(space=BOX, **overrides) -> DQNLearner:
    cfg = DQNConfig(**({"batch": 16, "updates": 5, "buffer": 100} | overrides))
    return DQNLearner(space, A, cfg, NET, seed=3, agent=0)


def table(values) -> Table:
    t = Table(*np.shape(values))
    with torch.no_grad():
        t.q.copy_(torch.tensor(values, dtype=torch.float32))
    return t


def test_double_dqn_target_by_hand():
    """Two next states: the online net picks the action, the target net values it."""
    online = table([[1.0, 3.0], [5.0, 2.0]])  # argmax: state 0 -> 1, state 1 -> 0
    target = table([[10.0, 20.0], [30.0, 40.0]])
    next_obs = torch.tensor([0, 1, 1])
    rewards = torch.tensor([1.0, -1.0, -1.0])
    dones = torch.tensor([0.0, 0.0, 1.0])
    y = double_dqn_target(online, target, rewards, next_obs, dones, gamma=0.9)
    # 1 + .9·Q_t(0, 1) = 19;  -1 + .9·Q_t(1, 0) = 26 (plain DQN would take max 40: 35);  done: -1
    torch.testing.assert_close(y, torch.tensor([19.0, 26.0, -1.0]))
    tie = double_dqn_target(table([[2.0, 2.0]]), table([[7.0, 9.0]]), torch.zeros(1), torch.tensor([0]),
                            torch.zeros(1), gamma=1.0)
    assert tie.item() == 7.0  # ties go to the lowest action, as the policy kind acts


def test_td_loss_on_fixed_batch_decreases():
    """With a frozen target (τ = 0) training is regression: the loss on the buffer falls."""
    agent = learner(tau=0.0, updates=40, batch=32, lr=3e-3)
    exp = experience(BOX, T=10, B=3)
    batch = tuple(torch.as_tensor(x) for x in exp.transitions())

    def loss() -> float:
        obs, a, r, nxt, done = batch
        y = double_dqn_target(agent.policy, agent.target, r, nxt, done, agent.cfg.gamma)
        with torch.no_grad():
            q = agent.policy(obs).gather(-1, a.unsqueeze(-1)).squeeze(-1)
        return float(torch.nn.functional.smooth_l1_loss(q, y))

    before = loss()
    first = agent.train(exp, Anchors(), seed=1)
    agent.buffer = ReplayBuffer(agent.cfg.buffer, BOX.shape, BOX.dtype)  # do not grow the data
    second = agent.train(exp, Anchors(), seed=2)
    assert loss() < 0.5 * before
    assert second["td_loss"] < first["td_loss"]
    assert second["optimizer_steps"] == 80  # cumulative


def test_epsilon_schedule():
    assert linear_epsilon(0, 1.0, 0.05, 100) == 1.0
    assert linear_epsilon(50, 1.0, 0.05, 100) == pytest.approx(0.525)
    assert linear_epsilon(100, 1.0, 0.05, 100) == pytest.approx(0.05)
    assert linear_epsilon(10_000, 1.0, 0.05, 100) == pytest.approx(0.05)
    assert linear_epsilon(0, 1.0, 0.05, 0) == 0.05  # no decay: the floor at once

    agent = learner(eps_start=1.0, eps_end=0.1, eps_decay=40, updates=1)
    assert agent.epsilon() == 1.0
    mask = np.ones((6, 2), np.float32)
    mask[4:, 1] = 0  # copy 1 ended after 4 steps: 10 live steps, not 12
    stats = agent.train(experience(BOX, mask=mask), Anchors(), seed=0)
    assert agent.epsilon() == pytest.approx(1.0 - 0.9 * 10 / 40)
    assert stats["epsilon"] == agent.epsilon() and stats["num-examples"] == 10
    assert agent.acting()[1].epsilon == agent.epsilon()


def test_replay_buffer_wraps_in_order_and_keeps_uint8():
    buf = ReplayBuffer(5, IMAGE.shape, IMAGE.dtype)

    def batch(lo, hi):
        k = np.arange(lo, hi)
        obs = np.broadcast_to(k[:, None, None, None], (len(k), *IMAGE.shape)).astype(np.uint8)
        return obs, k, k.astype(np.float32), obs + 1, np.zeros(len(k), np.float32)

    buf.add(*batch(0, 3))
    buf.add(*batch(3, 7))  # wraps: 0 and 1 are overwritten
    obs, actions, rewards, nxt, _ = buf.ordered()
    assert actions.tolist() == [2, 3, 4, 5, 6] and rewards.tolist() == [2, 3, 4, 5, 6]
    assert obs[:, 0, 0, 0].tolist() == [2, 3, 4, 5, 6] and nxt[:, 0, 0, 0].tolist() == [3, 4, 5, 6, 7]
    assert obs.dtype == np.uint8 and buf.obs.dtype == np.uint8 and (len(buf), buf.pos) == (5, 2)
    buf.add(*batch(10, 18))  # more than the capacity at once: the last 5 survive
    assert buf.ordered()[1].tolist() == [13, 14, 15, 16, 17]
    assert buf.sample(4, torch.Generator().manual_seed(0))[0].dtype == torch.uint8

    agent = learner(IMAGE, updates=2, buffer=8)
    agent.train(experience(IMAGE, T=3, B=2), Anchors(), seed=0)
    assert agent.buffer.obs.dtype == np.uint8 and len(agent.buffer) == 6


def test_round_trip_continues_exactly(tmp_path):
    """A learner rebuilt from its saved state trains exactly as the original would."""
    original = learner(buffer=20)  # round 1 fills 12 of 20 slots, round 2 wraps
    original.train(experience(BOX, seed=1), Anchors(), seed=11)
    path = tmp_path / "learner.pt"
    torch.save({"learner": original.state_dict()}, path)  # as clients.storage does
    rebuilt = learner(buffer=20)
    rebuilt.load_state_dict(torch.load(path, weights_only=False)["learner"])
    fresh = learner(buffer=20)

    exp2 = experience(BOX, seed=2)
    a = original.train(exp2, Anchors(), seed=22)
    b = rebuilt.train(exp2, Anchors(), seed=22)
    c = fresh.train(exp2, Anchors(), seed=22)
    a.pop("train_s"), b.pop("train_s"), c.pop("train_s")
    assert a == b and a != c
    for net in ("policy", "target"):
        theirs = getattr(rebuilt, net).state_dict()
        for name, p in getattr(original, net).state_dict().items():
            assert torch.equal(p, theirs[name]), name
    for x, y in zip(original.buffer.ordered(), rebuilt.buffer.ordered()):
        np.testing.assert_array_equal(x, y)
    assert (original.buffer.pos, original.steps_seen) == (rebuilt.buffer.pos, rebuilt.steps_seen) == (4, 24)


def test_anchor_pull_after_every_step():
    """lr·w = 1 puts θ on ω after each pull; with w = 0 the policy moves away."""
    agent = learner(lr=1e-3)
    omega = {k: torch.full_like(v, 0.25) for k, v in agent.policy.state_dict().items()}
    agent.train(experience(BOX), Anchors(omega=omega, weight_u=1000.0, step="sgd"), seed=0)
    for name, p in agent.policy.named_parameters():
        torch.testing.assert_close(p.detach(), omega[name])
    other = learner(lr=1e-3)
    other.train(experience(BOX), Anchors(omega=omega, weight_u=0.0, step="sgd"), seed=0)
    assert not torch.allclose(other.policy[0].weight, omega["0.weight"])


def test_registry_and_same_initial_policy():
    assert learners.learner_class("dqn") is DQNLearner and DQNLearner.kind == EPSILON_GREEDY
    one = learners.make("dqn", BOX, A, DQNConfig(), NET, seed=5, agent=0)
    two = learners.make("dqn", BOX, A, DQNConfig(), NET, seed=5, agent=7)
    for p, q in zip(one.policy.parameters(), two.policy.parameters()):
        assert torch.equal(p, q)  # every agent starts from one point, so federations can mix
    hyper = learners.hyper_from(DQNConfig, learners.hyper_record(DQNConfig(buffer=7, tau=0.5)))
    assert hyper == DQNConfig(buffer=7, tau=0.5)


# ---------------------------------------------------------------- FederatedQ (FPF's ω, ω̄)
@dataclass
class Rollout:
    """Stand-in for the world's rollout: the fields FederatedQ reads."""

    obs: np.ndarray  # [T+1, B, N, *obs_shape]
    actions: np.ndarray  # [T, B, N]
    rewards: np.ndarray  # [T, B, N]
    terminated: np.ndarray  # [T, B, N]
    mask: np.ndarray  # [T, B, N]
    state: np.ndarray  # [T+1, B, S]


def rollout(T=3, B=2, N=2, seed=0) -> Rollout:
    rng = np.random.default_rng(seed)
    mask = np.ones((T, B, N), np.float32)
    mask[2, 1, 0] = 0  # one agent of copy 1 ended early: 11 live samples
    return Rollout(obs=rng.uniform(-1, 1, (T + 1, B, N, 4)).astype(np.float32), actions=rng.integers(0, A, (T, B, N)),
                   rewards=rng.normal(size=(T, B, N)).astype(np.float32), terminated=np.ones((T, B, N), bool),
                   mask=mask, state=np.zeros((T + 1, B, 5), np.float32))


def federated(init=None, conservative=0.0) -> FederatedQ:
    init = init or to_record(DQNLearner.policy_network(BOX, A, NET, seed=3))
    return FederatedQ(init, space=BOX, num_actions=A, state_space=spaces.Box(-1, 1, (5,), np.float32), net=NET,
                      lr=1e-2, critic_lr=1e-3, seed=1, conservative=conservative)


def test_federated_q_moves_toward_team_reward():
    """Every episode ends each step (done = 1), so the target is the team reward itself."""
    data = rollout()
    team = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)  # [T, B], shared by the copy's agents
    omega = federated()
    assert list(omega.record().keys()) == list(DQNLearner.policy_network(BOX, A, NET, 3).state_dict())
    live = data.mask > 0
    target = np.broadcast_to(team[:, :, None], data.mask.shape)[live]

    def error() -> float:
        with torch.no_grad():
            q = omega.q(torch.as_tensor(data.obs[:-1]))
        qa = np.take_along_axis(q.numpy(), data.actions[..., None], -1)[..., 0]
        return float(np.abs(qa[live] - target).mean())

    before = error()
    stats = omega.update(data, team, updates=150, batch=64, gamma=0.9, gae_lambda=0.97, ent_coef=0.5, anchor=None,
                         anchor_weight=0.0, gen=torch.Generator().manual_seed(0))
    assert error() < 0.25 * before
    assert stats["samples"] == 11 and stats["target_mean"] == pytest.approx(target.mean(), abs=0.5)
    assert set(stats) == {"td_loss", "q_mean", "target_mean", "prox", "samples"} and stats["prox"] == 0.0


def test_federated_q_anchor_and_bootstrap():
    """The proximal term holds ω near its anchor; with done = 0 the target bootstraps."""
    data, team = rollout(), np.full((3, 2), 1.0, np.float32)
    anchor = federated().record()

    def distance(q: FederatedQ) -> float:
        return sum(float(((p - anchor[k].numpy()) ** 2).sum()) for k, p in
                   ((k, v.numpy()) for k, v in q.q.state_dict().items()))

    free, held = federated(), federated()
    common = dict(updates=30, batch=64, gamma=0.9, gae_lambda=0.0, ent_coef=0.0,)
    free.update(data, team, anchor=anchor, anchor_weight=0.0, gen=torch.Generator().manual_seed(0), **common)
    stats = held.update(data, team, anchor=anchor, anchor_weight=50.0, gen=torch.Generator().manual_seed(0), **common)
    assert stats["prox"] > 0 and distance(held) < 0.5 * distance(free)

    data.terminated[:] = False
    boot = federated()
    boot.load(held.record())  # as FPF loads the aggregated ω: the target must follow
    with torch.no_grad():
        q_next = boot.q(torch.as_tensor(data.obs[1:])).max(-1).values.numpy()  # double DQN, same nets: max
    stats = boot.update(data, team, updates=1, batch=64, gamma=0.9, gae_lambda=0.0, ent_coef=0.0, anchor=None,
                        anchor_weight=0.0, gen=torch.Generator().manual_seed(0))
    # the one step's draw (uniform over the 11 live samples), replayed: y = 1 + 0.9·max_a Q_ω(o', a),
    # with the target network synchronised to the ω this round started from
    live = np.flatnonzero(data.mask.reshape(-1) > 0)
    pick = live[torch.randint(len(live), (len(live),), generator=torch.Generator().manual_seed(0)).numpy()]
    assert stats["target_mean"] == pytest.approx(float((1 + 0.9 * q_next.reshape(-1)[pick]).mean()), abs=1e-5)


def test_conservative_gap_by_hand():
    q = torch.tensor([[0.0, np.log(3.0), 0.0], [1.0, 1.0, 1.0]])
    # row 0: logsumexp = log(1 + 3 + 1) = log 5, action 1 -> log 5 - log 3; row 1: log 3 + 1 - 1
    gap = conservative_gap(q, torch.tensor([1, 2]))
    assert float(gap) == pytest.approx((np.log(5 / 3) + np.log(3)) / 2, abs=1e-6)


def test_conservative_q_keeps_omega_on_the_actions_in_the_data():
    """Data where the agents only ever take action 0 (reward 0): plain Q-learning leaves the
    untaken actions' values where the initialisation put them, the conservative term pushes
    them below the taken one, so ω's greedy action is the data's."""
    data, team = rollout(T=3, B=2, N=2), np.zeros((3, 2), np.float32)
    data.actions[:] = 0
    init = to_record(DQNLearner.policy_network(BOX, A, NET, seed=3))
    for k, v in init.items():  # a head that prefers action 2 everywhere
        if k.endswith("bias") and v.numpy().shape == (A,):
            init[k] = type(v)(np.array([0.0, 0.0, 5.0], np.float32))
    obs = torch.as_tensor(data.obs[:-1].reshape(-1, 4))
    greedy = {}
    for weight in (0.0, 1.0):
        omega = federated(init, conservative=weight)
        stats = omega.update(data, team, updates=200, batch=64, gamma=0.9, gae_lambda=0.0, ent_coef=0.0, anchor=None,
                             anchor_weight=0.0, gen=torch.Generator().manual_seed(0))
        with torch.no_grad():
            greedy[weight] = omega.q(obs).argmax(-1).numpy()
        assert ("conservative_gap" in stats) == (weight > 0)
    assert (greedy[0.0] == 2).mean() > 0.9  # extrapolation: the untaken action stays the best
    assert (greedy[1.0] == 0).all()
    with pytest.raises(ValueError, match="conservative weight must be >= 0"):
        federated(init, conservative=-1.0)
