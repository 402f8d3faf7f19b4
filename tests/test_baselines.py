"""Reward-sharing baselines, FedAvg and free entry and exit, against hand-computed values."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord

from strategies.participation import Participation
from strategies.fedavg import FedAvg
from strategies.reward_sharing import AverageReward, InequityAversion, MinimumReward, inequity_averse

R = np.array([[[1.0, 0.0, 2.0]], [[0.0, 0.0, 3.0]]])  # T=2, B=1, N=3
EVERYONE = Participation.parse("1.0", "fixed", 3)


def test_avg_and_min_rewards():
    np.testing.assert_allclose(AverageReward(EVERYONE, 0).train_rewards(R)[:, 0], [[1, 1, 1], [1, 1, 1]])
    np.testing.assert_allclose(MinimumReward(EVERYONE, 0).train_rewards(R)[:, 0], [[0, 0, 0], [0, 0, 0]])


def test_inequity_aversion_by_hand():
    out = inequity_averse(R, envy=5.0, guilt=0.05, decay=0.5)
    # t=0: e = r = [1, 0, 2]. Agent 0: envy of agent 2 (2-1=1), guilt over agent 1 (1-0=1)
    assert out[0, 0, 0] == pytest.approx(1 - 5 / 2 * 1 - 0.05 / 2 * 1)
    # agent 1 envies 0 (1) and 2 (2); agent 2 feels guilt over 0 (1) and 1 (2)
    assert out[0, 0, 1] == pytest.approx(0 - 5 / 2 * 3)
    assert out[0, 0, 2] == pytest.approx(2 - 0.05 / 2 * 3)
    # t=1: e = 0.5·[1, 0, 2] + [0, 0, 3] = [0.5, 0, 4]; agent 0 envies 3.5, guilt 0.5
    assert out[1, 0, 0] == pytest.approx(0 - 5 / 2 * 3.5 - 0.05 / 2 * 0.5)
    with pytest.raises(ValueError, match="envy >= 0"):
        InequityAversion(EVERYONE, 0, envy=-1.0)


class FakeReply:
    def __init__(self, content):
        self.content = content

    def has_error(self):
        return False


def test_fedavg_averages_shared_parameters_and_sends_the_global_policy():
    fedavg = FedAvg(Participation.parse("0.0", "fixed", 2), 0)
    assert fedavg.participation.size == 2  # mandatory: everyone, whatever was asked
    a = ArrayRecord({"w": Array(np.array([1.0, 3.0], np.float32))})
    b = ArrayRecord({"w": Array(np.array([3.0, 5.0], np.float32))})
    mean, metrics = fedavg.aggregate_train(1, [FakeReply({"shared": a}), FakeReply({"shared": b})])
    np.testing.assert_allclose(mean["w"].numpy(), [2.0, 4.0])
    assert fedavg.instructions(0, 1, mean) == ({}, {"replace": mean})
    assert fedavg.acting_policies(mean) == {0: mean, 1: mean}  # everyone acts with the global policy
    assert FedAvg.__mro__[1].acting_policies(fedavg, mean) == {}  # other strategies: each its own


def test_voluntary_participation_follows_declarations():
    p = Participation.parse("voluntary", "fixed", 3)
    assert p.members(1, 0) == {0, 1, 2}
    p.declare({0: False, 2: True})
    assert p.members(2, 0) == {1, 2}
    p.declare({0: True})
    assert p.members(3, 0) == {0, 1, 2}
