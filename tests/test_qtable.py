"""The tabular Q-learning learner (clients.qtable)."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from clients import learners
from clients.anchors import Anchors
from clients.experience import Experience
from clients.networks import NetworkConfig, Table
from clients.policies import EPSILON_GREEDY
from clients.qtable import QTableConfig, QTableLearner, q_epsilon

STATES = spaces.Discrete(3)
NET = NetworkConfig(hidden=8, layers=1)


def learner(**overrides) -> QTableLearner:
    return QTableLearner(STATES, 2, QTableConfig(**overrides), NET, seed=0, agent=0)


def three_steps() -> Experience:
    """One copy: 0 -a1-> 1 -a0-> 0 -a1-> 2 (terminal), then a step after the end (mask 0)."""
    return Experience(obs=np.array([[0], [1], [0], [2], [1]]), actions=np.array([[1], [0], [1], [1]]),
                      logp=np.zeros((4, 1), np.float32), rewards=np.array([[1.0], [2.0], [-1.0], [100.0]], np.float32),
                      terminated=np.array([[False], [False], [True], [False]]),
                      mask=np.array([[1.0], [1.0], [1.0], [0.0]], np.float32))


def test_update_equals_hand_computation():
    agent = learner(lr=0.5, gamma=0.9)
    assert isinstance(agent.policy, Table) and agent.kind == EPSILON_GREEDY
    stats = agent.train(three_steps(), Anchors(), seed=0)
    # δ1 = 1 + .9·max q[1] - q[0,1] = 1          -> q[0,1] = 0.5
    # δ2 = 2 + .9·max q[0] - q[1,0] = 2.45       -> q[1,0] = 1.225 (sees step 1's update)
    # δ3 = -1 (terminal) - q[0,1] = -1.5         -> q[0,1] = 0.5 - 0.75 = -0.25
    # the masked step after the end changes nothing
    expected = np.array([[0.0, -0.25], [1.225, 0.0], [0.0, 0.0]], np.float32)
    np.testing.assert_allclose(agent.policy.q.detach().numpy(), expected, rtol=1e-6)
    assert stats["num-examples"] == 3 and stats["optimizer_steps"] == 3
    assert stats["td_loss"] == pytest.approx(0.5 * (1 + 2.45 ** 2 + 1.5 ** 2) / 3)
    greedy = agent.policy(torch.tensor([0, 1, 2])).argmax(-1)
    assert greedy.tolist() == [0, 0, 0]  # ties (state 2) to the lowest action


def test_copies_are_walked_one_after_another():
    """Copy 0's whole episode is learned before copy 1's first step bootstraps from it."""
    exp = Experience(obs=np.array([[0, 1], [1, 2], [2, 2]]), actions=np.zeros((2, 2), np.int64),
                     logp=np.zeros((2, 2), np.float32), rewards=np.array([[0.0, 0.0], [1.0, 0.0]], np.float32),
                     terminated=np.array([[False, False], [True, True]]), mask=np.ones((2, 2), np.float32))
    agent = learner(lr=1.0, gamma=0.5)
    agent.train(exp, Anchors(), seed=0)
    # copy 0: q[0,0] = 0 + .5·0 = 0, q[1,0] = 1; copy 1: q[1,0] = 0 + .5·max q[2] = 0, q[2,0] = 0
    # (time-major order: q[0,0] = 0, copy 1's q[1,0] = 0, then copy 0's q[1,0] = 1, q[2,0] = 0)
    np.testing.assert_allclose(agent.policy.q.detach().numpy()[:, 0], [0.0, 0.0, 0.0])


def test_refuses_a_box_space():
    box = spaces.Box(-1.0, 1.0, (4,), np.float32)
    with pytest.raises(ValueError, match="q-table learner needs a Discrete observation space"):
        learners.make("q-table", box, 2, QTableConfig(), NET, seed=0, agent=0)


def test_epsilon_schedules():
    assert [q_epsilon("1/t", 0.1, k) for k in (0, 9, 10, 19)] == pytest.approx([0.1, 0.1, 1 / 11, 0.05])
    assert [q_epsilon("1/t", 1.0, k) for k in (0, 1, 2)] == pytest.approx([1.0, 0.5, 1 / 3])
    assert q_epsilon("constant", 0.2, 50) == 0.2
    with pytest.raises(ValueError, match="1/t"):
        q_epsilon("linear", 0.1, 0)

    agent = learner(epsilon=0.5, epsilon_schedule="1/t")
    seen = [agent.epsilon()]
    for _ in range(3):
        seen.append(agent.train(three_steps(), Anchors(), seed=0)["epsilon"])
    assert seen == pytest.approx([0.5, 0.5, 1 / 3, 0.25])
    assert agent.acting()[1].epsilon == pytest.approx(0.25)
    constant = learner(epsilon=0.3)
    constant.train(three_steps(), Anchors(), seed=0)
    assert constant.epsilon() == 0.3


def test_anchor_pull_once_per_round_and_round_trip():
    agent = learner(lr=0.5, epsilon=1.0, epsilon_schedule="1/t")
    agent.scale_lr(0.5)  # lr 0.25, as LMF's α_t would set it
    empty = three_steps()
    empty.mask[:] = 0
    agent.train(empty, Anchors(omega={"q": torch.ones(3, 2)}, weight_u=2.0, step="sgd"), seed=0)
    # one pull per round: q <- 0 - 0.25·2·(0 - 1) = 0.5
    np.testing.assert_allclose(agent.policy.q.detach().numpy(), np.full((3, 2), 0.5))

    rebuilt = learner(lr=0.5, epsilon=1.0, epsilon_schedule="1/t")
    rebuilt.load_state_dict(agent.state_dict())
    rebuilt.scale_lr(0.5)  # the ClientApp sets the scale every round
    assert rebuilt.rounds_trained == 1 and rebuilt.epsilon() == 0.5
    a, b = agent.train(three_steps(), Anchors(), seed=0), rebuilt.train(three_steps(), Anchors(), seed=0)
    a.pop("train_s"), b.pop("train_s")
    assert a == b and torch.equal(agent.policy.q, rebuilt.policy.q) and a["optimizer_steps"] == 3
