"""Strategies' checkpoint state (the contract's state_dict / load_state_dict)."""

import numpy as np
from conftest import world
from flwr.app import Array, ArrayRecord

import envs
from clients.networks import NetworkConfig, flat, to_record
from strategies.fpf import FPF
from strategies.graphs import make_schedule
from strategies.lmf import LMF
from strategies.participation import Participation


def _fpf(seed=0):
    game = envs.make_batched("matthew", 3, batch_size=2, episode_length=10)
    w = world(game, hidden=8)
    init = to_record(w.initial_policy("ppo", game, game.num_actions, NetworkConfig(8, 1), 0))
    fpf = FPF(Participation.parse("1.0", "fixed", 3), seed, init, space=game.observation_space,
              num_actions=game.num_actions, state_space=game.state_space, net=NetworkConfig(8, 1),
              fed_updates=2, fed_batch=16)
    return fpf, w, init


def test_fpf_resumes_its_anchors_exactly():
    a, w, init = _fpf()
    arrays, _ = a.federated_training(1, w.rollout(1), init)
    a.members = frozenset({0, 1, 2})
    b, _, _ = _fpf(seed=5)  # another generator and initialisation: only the loaded state counts
    b.load_state_dict(a.state_dict())
    assert b.members == a.members
    ro = w.rollout(2)
    next_a, _ = a.federated_training(2, ro, arrays)
    next_b, _ = b.federated_training(2, ro, arrays)
    np.testing.assert_array_equal(flat(next_a), flat(next_b))
    np.testing.assert_array_equal(flat(a.instructions(0, 3, next_a)[1]["omega-bar"]),
                                  flat(b.instructions(0, 3, next_b)[1]["omega-bar"]))
    assert not np.array_equal(flat(next_a), flat(init))


def test_lmf_keeps_undelivered_mixes_in_its_state():
    lmf = LMF(Participation.parse("1.0", "fixed", 2), 0, make_schedule("ring"))
    lmf.pending = {1: ArrayRecord({"w": Array(np.array([1.5, 2.5], np.float32))})}
    copy = LMF(Participation.parse("1.0", "fixed", 2), 0, make_schedule("ring"))
    copy.load_state_dict(lmf.state_dict())
    np.testing.assert_array_equal(copy.instructions(1, 2, ArrayRecord())[1]["mix"]["w"].numpy(), [1.5, 2.5])
