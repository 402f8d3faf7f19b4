"""Pareto and punishing mediators of sequential games: trained joint policies played for
the delegators, first-step and any-step delegation, the policy files, the spite reward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import world
from flwr.app import ArrayRecord

import envs
from clients import joint_policy
from clients.joint_policy import JointPolicy
from clients.networks import NetworkConfig
from federation.config import ConfigError, RunConfig
from federation.results import read_metrics
from federation.in_process import run_in_process  # gives a simulation's metrics (tests/test_simulation.py)
from strategies.policy_mediator import PolicyMediator
from strategies.reward_sharing import Spite

N, A = 3, 5


def game(batch=4, **kw):
    return envs.make_batched("job", N, batch_size=batch, observation="discrete", episode_length=12, **kw)


def fixed_policy(path, actions: list[int]) -> JointPolicy:
    """A joint q-table policy in which agent i greedily plays ``actions[i]`` whatever it sees."""
    g = game()
    records = []
    for a in actions:
        q = torch.zeros(g.observation_space.n, A)
        q[:, a] = 1.0
        records.append(ArrayRecord({"q": q}))
    joint_policy.save(path, "job", "q-table", A, g.observation_space, NetworkConfig(), records)
    return JointPolicy(path, "job", N, A, g.observation_space)


@pytest.fixture
def policies(tmp_path):
    return fixed_policy(tmp_path / "coop.pt", [1, 2, 3]), fixed_policy(tmp_path / "punish.pt", [4, 4, 4])


SUBMITTED = np.zeros((4, N), np.int64)
DELEGATE = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]], bool)
OBS = np.zeros((4, N), np.int64)


def test_pareto_plays_the_cooperative_policy_for_two_or_more_delegators(policies):
    mediator = PolicyMediator("pareto", *policies)
    out = mediator.act_for(0, None, SUBMITTED.copy(), DELEGATE, obs=OBS)
    np.testing.assert_array_equal(out, [[0, 0, 0],  # nobody delegates
                                        [0, 0, 0],  # a lone delegator keeps its own action
                                        [1, 2, 0],  # two delegators: their slots of the cooperative policy
                                        [1, 2, 3]])
    assert mediator.end_of_rollout() == {"mediated_share": 0.5, "punishing_share": 0.0}


def test_punishing_cooperates_only_when_everyone_delegates(policies):
    mediator = PolicyMediator("punishing", *policies)
    out = mediator.act_for(0, None, SUBMITTED.copy(), DELEGATE, obs=OBS)
    np.testing.assert_array_equal(out, [[0, 0, 0], [4, 0, 0], [4, 4, 0], [1, 2, 3]])
    assert mediator.end_of_rollout() == {"mediated_share": 0.75, "punishing_share": 0.5}


def test_bad_mediator_settings_are_refused(policies):
    with pytest.raises(ValueError, match="punishing joint policy"):
        PolicyMediator("punishing", policies[0])
    with pytest.raises(ValueError, match="valid choices: first, any"):
        PolicyMediator("pareto", policies[0], scope="sometimes")


@pytest.mark.parametrize("scope", ["first", "any"])
def test_first_step_delegation_binds_the_episode(policies, scope):
    """Random PPO agents flip their delegation bit from step to step; with scope "first"
    the world holds the step-0 choice for the whole episode, with "any" it does not."""
    g = game(batch=16)
    w = world(g, mediator=PolicyMediator("pareto", *policies, scope=scope))
    ro = w.rollout(1)
    bits = ro.actions >= A
    np.testing.assert_array_equal(ro.delegated[0], bits[0])
    held = (ro.delegated == ro.delegated[0]).all()
    assert held == (scope == "first")
    if scope == "any":
        np.testing.assert_array_equal(ro.delegated, bits)
    # two or more delegators play the cooperative policy's actions, everyone else their own
    many = ro.delegated.sum(-1, keepdims=True) >= 2
    coop = np.broadcast_to(np.array([1, 2, 3]), ro.played.shape)
    mediated = many & ro.delegated
    assert mediated.any()
    np.testing.assert_array_equal(ro.played[mediated], coop[mediated])
    np.testing.assert_array_equal(ro.played[~mediated], (ro.actions % A)[~mediated])


def test_a_joint_policy_must_fit_the_game(tmp_path, policies):
    g = game()
    path = tmp_path / "coop.pt"
    with pytest.raises(ValueError, match="agents=3, this run has 4"):
        JointPolicy(path, "job", 4, A, g.observation_space)
    with pytest.raises(ValueError, match="num_actions=5, this run has 10"):  # a policy that itself delegated
        JointPolicy(path, "job", N, 2 * A, g.observation_space)
    with pytest.raises(ValueError, match="does not exist"):
        JointPolicy(tmp_path / "nothing.pt", "job", N, A, g.observation_space)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a joint-policy file"):
        JointPolicy(tmp_path / "other.pt", "job", N, A, g.observation_space)


def test_sequential_games_need_the_joint_policies(tmp_path):
    with pytest.raises(ConfigError, match="--mediator-policy OUT/policies.pt of a run of .*--strategy avg"):
        RunConfig.of(env="cleanup", agents=2, strategy="pareto", out=str(tmp_path / "a"))
    with pytest.raises(ConfigError, match="--punishing-policy .*--strategy spite"):
        RunConfig.of(env="job", agents=3, observation="discrete", strategy="punishing",
                     mediator_policy=str(tmp_path / "coop.pt"), out=str(tmp_path / "b"))
    with pytest.raises(ConfigError, match="valid choices: first, any"):
        RunConfig.of(delegate="later", out=str(tmp_path / "c"))


def test_spite_trains_on_minus_the_others_mean_reward():
    rewards = np.array([[[1.0, 2.0, 4.0]]])
    np.testing.assert_allclose(Spite.train_rewards(None, rewards), [[[-3.0, -2.5, -1.5]]])


def test_a_run_leaves_its_policies_and_a_mediator_plays_them(tiny):
    """An `avg` run writes OUT/policies.pt (its agents' last acting policies); a `pareto`
    run with any-step delegation plays them for its delegators."""
    pre = tiny.replace(env="job", observation="discrete", strategy="avg", rounds=1)
    run_in_process(pre)
    saved = torch.load(f"{pre.out}/policies.pt", weights_only=False)
    learner = torch.load(f"{pre.out}/agents/agent_1/learner.pt", weights_only=False)["learner"]["actor"]
    for name, value in saved["policies"][1].items():
        np.testing.assert_array_equal(value, learner[name].numpy())
    cfg = tiny.replace(env="job", observation="discrete", strategy="pareto", mediator_policy=f"{pre.out}/policies.pt",
                       delegate="any", out=f"{pre.out}-pareto")
    summary = run_in_process(cfg)
    assert summary["events"] == []
    table = read_metrics(cfg.out)
    assert all(0 < r["delegation_rate"] < 1 and 0 < r["mediated_share"] < 1 for r in table)
