"""Free entry and exit (clients/volunteer.py): the estimate by hand, and the rule's
participation in simulated runs.

Acceptance: fed returns that do not depend on the status, on a flat, a rising (t) and a
concave (30·√t) learning curve, the rule stays within ±10 points of its neutral level,
50% (it is symmetric between in and out); when joining adds a fixed +1 to the return
(noise std 1) it reaches >= 90% participation (at most 95% with ε = 0.1), and when
joining costs 1 it falls to <= 10%. Participation is measured over the last half of
seeded runs, with the defaults ε = 0.1, μ = 0.8, λ = 0.98.
"""

import numpy as np
import pytest

from clients.volunteer import JoinRecord, decide

EPSILON, MEMORY = 0.1, 0.8  # the defaults of --vol-epsilon, --vol-memory
CURVES = {"flat": lambda t: 0.0, "rising": lambda t: float(t), "concave": lambda t: 30 * np.sqrt(t)}


def test_estimate_by_hand():
    """μ = λ = 0.5, ε = 0; returns 10, 14, 11, 13."""
    rng, mu, lam = np.random.default_rng(0), 0.5, 0.5
    rec, join = decide(JoinRecord(), 10.0, member_now=True, epsilon=0.0, memory=mu, rng=rng, effect_memory=lam)
    assert rec.level == 10.0 and rec.weight_in == rec.weight_out == 0.0  # round 1: nothing to credit
    assert join is False  # no return earned out yet: try leaving
    rec, join = decide(rec, 14.0, member_now=False, epsilon=0.0, memory=mu, rng=rng, effect_memory=lam)
    # earned by the policy trained in round 1, in: e = 14 - 10 = 4; L = 0.5·10 + 0.5·14 = 12
    assert (rec.sum_in, rec.weight_in, rec.level) == (4.0, 1.0, 12.0)
    assert join is False  # still nothing earned out
    rec, join = decide(rec, 11.0, member_now=False, epsilon=0.0, memory=mu, rng=rng, effect_memory=lam)
    # earned out: e = 11 - 12 = -1; L = 11.5; in sums forgotten by half: 2 / 0.5
    assert (rec.sum_in, rec.weight_in, rec.sum_out, rec.weight_out) == (2.0, 0.5, -1.0, 1.0)
    assert rec.effect == pytest.approx(4.0 - -1.0) and join is True
    rec, join = decide(rec, 13.0, member_now=True, epsilon=0.0, memory=mu, rng=rng, effect_memory=lam)
    # earned out (round 3's status): e = 13 - 11.5 = 1.5; L = 12.25
    # β̂ = 1 / 0.25 - (-0.5 + 1.5) / (0.5 + 1) = 4 - 2/3
    assert rec.level == 12.25 and rec.prev_member == 1
    assert rec.effect == pytest.approx(4 - 2 / 3) and join is True


def test_costly_membership_by_hand():
    rng = np.random.default_rng(0)
    rec = JoinRecord(level=5.0, sum_in=1.0, weight_in=1.0, sum_out=3.0, weight_out=1.0, prev_member=1)
    rec2, join = decide(rec, 5.0, member_now=True, epsilon=0.0, memory=0.8, rng=rng, effect_memory=1.0)
    assert rec2 is rec  # updated in place: the ClientApp keeps this object
    assert rec.effect == pytest.approx(1 / 2 - 3) and join is False


def test_tries_each_status_before_trusting_the_estimate():
    """A record lost mid-run restarts while out: it stays out once, then tries joining."""
    rng = np.random.default_rng(0)
    rec, join = decide(JoinRecord(), 3.0, member_now=False, epsilon=0.0, memory=0.8, rng=rng)
    assert join is False and rec.weight_out == 0.0
    rec, join = decide(rec, 9.0, member_now=False, epsilon=0.0, memory=0.8, rng=rng)
    assert rec.sum_out == 6.0 and rec.weight_in == 0.0 and join is True


def test_exploration_is_a_fair_coin():
    rec = JoinRecord(sum_in=9.0, weight_in=1.0, weight_out=1.0, prev_member=1)
    choices = [decide(JoinRecord(**rec.to_dict()), 0.0, True, 1.0, 0.5, np.random.default_rng(s))[1]
               for s in range(200)]
    assert 80 < sum(choices) < 120


def test_record_round_trips_as_plain_scalars():
    rec = JoinRecord()
    rng = np.random.default_rng(3)
    for t, member in enumerate([True, False, True, True]):
        decide(rec, float(t), member, 0.1, 0.8, rng)
    values = rec.to_dict()
    assert all(type(v) in (int, float) for v in values.values())
    assert JoinRecord.from_dict(values) == rec


def participation(curve, benefit: float, seeds: int, rounds: int) -> float:
    """Mean fraction of rounds in the federation over the last half of seeded runs.

    Round t's return is curve(t) + benefit·(status in round t-1) + N(0, 1): earned by the
    policy trained under the previous status. Round 1 (no previous status) gets no benefit.
    """
    rates = []
    for seed in range(seeds):
        noise = np.random.default_rng([seed, 1]).normal(size=rounds)
        rng = np.random.default_rng([seed, 2])
        record, member, previous, statuses = JoinRecord(), True, False, []
        for t in range(rounds):
            statuses.append(member)
            episode_return = curve(t) + benefit * previous + noise[t]
            record, join = decide(record, episode_return, member, EPSILON, MEMORY, rng)
            previous, member = member, join
        rates.append(np.mean(statuses[rounds // 2:]))
    return float(np.mean(rates))


@pytest.mark.parametrize("curve", CURVES)
def test_status_independent_returns_keep_participation_neutral(curve):
    assert participation(CURVES[curve], 0.0, seeds=200, rounds=3000) == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize("curve", CURVES)
def test_a_benefit_of_joining_brings_agents_in(curve):
    assert participation(CURVES[curve], +1.0, seeds=20, rounds=2000) >= 0.9


@pytest.mark.parametrize("curve", CURVES)
def test_a_cost_of_joining_keeps_agents_out(curve):
    assert participation(CURVES[curve], -1.0, seeds=20, rounds=2000) <= 0.1
