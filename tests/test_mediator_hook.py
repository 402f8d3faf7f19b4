"""The world's mediator hook: delegation, Stackelberg leaders, reward reshaping."""

import numpy as np
from conftest import world

import envs
from envs.stackelberg import StackelbergView
from strategies.mediator import Mediator


class Everyone3(Mediator):
    """Proposes action 3 for *every* agent; the world may use it only for delegators."""

    delegation = True

    def __init__(self):
        self.calls = []

    def act_for(self, t, state, actions, delegate, obs=None):
        self.calls.append((actions.copy(), delegate.copy()))
        return np.full_like(actions, 3)


def test_mediator_replaces_exactly_the_delegators_actions():
    game = envs.make_batched("matthew", 4, batch_size=8, episode_length=30)
    mediator = Everyone3()
    w = world(game, mediator=mediator)
    assert w.num_actions == 2 * game.num_actions  # delegation is one more bit of the agent's own choice
    ro = w.rollout(1)
    own, delegate = ro.actions % game.num_actions, ro.actions >= game.num_actions
    assert 0.2 < delegate.mean() < 0.8  # an untrained policy delegates about half the time
    np.testing.assert_array_equal(ro.delegated, delegate)
    np.testing.assert_array_equal(ro.played[delegate], 3)
    np.testing.assert_array_equal(ro.played[~delegate], own[~delegate])  # non-delegators untouched
    assert (own[delegate] != 3).any()  # so the replacement did change something
    # the mediator was shown the submitted actions and who delegated
    np.testing.assert_array_equal(mediator.calls[0][0], own[0])
    np.testing.assert_array_equal(mediator.calls[0][1], delegate[0])
    # the game really played ro.played: replaying it gives the same rewards
    replay = envs.make_batched("matthew", 4, batch_size=8, episode_length=30)
    replay.reset(seed=int(np.random.default_rng([0, 1]).integers(2**31)))
    for t in range(30):
        _, r, _, _ = replay.step(ro.played[t])
        np.testing.assert_array_equal(r, ro.rewards[t])
    metrics = ro.mediator_metrics()
    assert metrics["delegation_rate"] == delegate.mean()
    assert metrics["delegation_rate_agent_2"] == delegate[:, :, 2].mean()


class Alternating(Mediator):
    """Agent 0 leads in even copies, agent 1 in odd copies."""

    stackelberg = True

    def leaders(self, t, state):
        lead = np.zeros((state.shape[0], 2), bool)
        lead[0::2, 0] = True
        lead[1::2, 1] = True
        return lead


def test_followers_see_the_leaders_action_and_leaders_see_nothing():
    game = StackelbergView(envs.make_batched("matrix", 2, batch_size=6, episode_length=5))
    ro = world(game, mediator=Alternating()).rollout(1)
    slot = 1 + game.num_agents * game.num_actions  # discrete obs: index * slot + s
    s = ro.obs[:-1] % slot  # [T, B, N]
    leader = np.zeros((6, 2), bool)
    leader[0::2, 0] = leader[1::2, 1] = True
    for t in range(5):
        for b in range(6):
            lead = int(leader[b].argmax())
            follow = 1 - lead
            assert s[t, b, lead] == 0  # the leader's slot is empty: it never sees the follower's action
            assert s[t, b, follow] == 1 + lead * game.num_actions + ro.actions[t, b, lead]
            assert ro.leaders[t, b, lead] and not ro.leaders[t, b, follow]
    # the game's own part of the observation is the same for both (the previous joint action)
    np.testing.assert_array_equal(ro.obs[:-1, :, 0] // slot, ro.obs[:-1, :, 1] // slot)
    assert ro.mediator_metrics()["leader_share_agent_0"] == 0.5


class Doubling(Mediator):
    reshapes = True

    def reshape(self, t, state, actions, rewards):
        return 2 * rewards + 1


def test_reshaped_rewards_are_kept_apart_from_the_games():
    game = envs.make_batched("matrix", 2, batch_size=3, episode_length=4)
    ro = world(game, mediator=Doubling()).rollout(1)
    np.testing.assert_array_equal(ro.shaped, 2 * ro.rewards + 1)
    assert ro.returns.sum() == ro.rewards.sum(0).mean(0).sum()  # metrics use the game's rewards
