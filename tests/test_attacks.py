"""Poisoned uploads and the robust rules that withstand them, against hand computations."""

import csv

import numpy as np
import pytest

import run_sim
from clients.attacks import AttackConfig, poison
from federation.config import ConfigError, RunConfig
from strategies.fpf import fpf_aggregate
from strategies.robust import robust_aggregate

# five uploads of one 1-D layer; the last is an attacker's
UPLOADS = [[np.array([1.0, 0.0])], [np.array([2.0, 0.0])], [np.array([3.0, 0.0])], [np.array([4.0, 0.0])],
           [np.array([100.0, -50.0])]]


@pytest.mark.parametrize("rule, expected", [
    ("mean", [22.0, -10.0]),
    ("median", [3.0, 0.0]),
    # trim 0.2 of 5 cuts one value at each end: mean of 2, 3, 4 and of 0, 0, 0
    ("trimmed-mean", [3.0, 0.0]),
    # f = 1: each upload's score sums its n - f - 2 = 2 smallest squared distances:
    # 1.0 -> 1 + 4 = 5, 2.0 -> 1 + 1 = 2, 3.0 -> 2, 4.0 -> 5, the attacker's ~ 10^4;
    # 2.0 and 3.0 tie and the first is chosen
    ("krum", [2.0, 0.0]),
    # MultiKrum keeps n - f = 4 best scores: uploads 1-4, mean 2.5
    ("multikrum", [2.5, 0.0]),
])
def test_robust_rules_by_hand(rule, expected):
    out, fell_back = robust_aggregate([list(u) for u in UPLOADS], rule, f=1, trim=0.2)
    np.testing.assert_allclose(out[0], expected)
    assert not fell_back


def test_bulyan_by_hand_and_its_minimum():
    # n = 7 >= 4f + 3 with f = 1: Krum selects n - 2f = 5 uploads (the honest ones 1..5),
    # then averages per coordinate the n - 4f = 3 values closest to their median 3: 2, 3, 4
    uploads = [[np.array([float(v)])] for v in (1, 2, 3, 4, 5, 100, -100)]
    out, fell_back = robust_aggregate(uploads, "bulyan", f=1)
    np.testing.assert_allclose(out[0], [3.0])
    assert not fell_back
    # too few uploads for Bulyan: the median, and it says so
    out, fell_back = robust_aggregate(uploads[:5], "bulyan", f=1)
    np.testing.assert_allclose(out[0], [3.0])
    assert fell_back


def test_fpf_eq_11_with_a_robust_rule():
    omega = [np.array([0.0, 0.0])]
    robust = lambda ups: robust_aggregate(ups, "median")[0]  # noqa: E731
    new = fpf_aggregate(omega, [list(u) for u in UPLOADS], eta=0.5, combine=robust)
    np.testing.assert_allclose(new[0], [1.5, 0.0])  # (1 - η)·0 + η·median
    plain = fpf_aggregate(omega, [list(u) for u in UPLOADS], eta=0.5)
    np.testing.assert_allclose(plain[0], [11.0, -5.0])


def test_attacks_by_hand():
    before, after = {"w": np.array([1.0, 2.0])}, {"w": np.array([1.5, 1.0])}  # update (0.5, -1)
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(poison("sign-flip", after, before, False, 10.0, rng)["w"], [1 - 5, 2 + 10])
    np.testing.assert_allclose(poison("sign-flip", after, before, True, 10.0, rng)["w"], [-5, 10])
    omega = {"w": np.array([7.0, 7.0])}
    np.testing.assert_allclose(poison("free-ride", after, before, False, 10.0, rng, omega)["w"], [7, 7])
    np.testing.assert_allclose(poison("free-ride", after, before, False, 10.0, rng)["w"], [1, 2])
    np.testing.assert_allclose(poison("free-ride", after, before, True, 10.0, rng)["w"], [0, 0])
    noisy = poison("noise", {"w": np.zeros(20000)}, {"w": np.zeros(20000)}, False, 3.0, np.random.default_rng(1))["w"]
    assert abs(noisy.std() - 3.0) < 0.05 and abs(noisy.mean()) < 0.05


def test_attackers_are_checked():
    assert AttackConfig("sign-flip", "0,3").ids(5) == [0, 3]
    assert AttackConfig("none", "").ids(5) == []
    with pytest.raises(ValueError, match="needs --attackers"):
        AttackConfig("noise", "").ids(5)
    with pytest.raises(ValueError, match=r"unknown agents \[7\]"):
        AttackConfig("noise", "7").ids(5)


@pytest.mark.parametrize("args, message", [
    (["--attack", "bribe"], "unknown attack 'bribe'; valid choices: none, sign-flip, noise, free-ride"),
    (["--attack", "noise"], "attack noise needs --attackers"),
    (["--robust", "average"], "unknown robust rule 'average'"),
    (["--robust", "trimmed-mean", "--trim", "0.5"], "trim must be in [0, 0.5), got 0.5"),
    (["--robust", "bulyan", "--robust-f", "1", "--participation", "0.5"],
     "robust bulyan with robust-f 1 needs at least 7 uploads per round; fpf gets at most 5"),
    (["--robust-f", "-1"], "robust-f must be >= 0"),
])
def test_bad_attack_and_defence_flags(args, message, capsys, tmp_path):
    assert run_sim.main(args + ["--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


def test_a_sign_flipping_attacker_moves_omega_and_the_median_resists_it(tiny, tmp_path):
    """FPF, 3 agents all participating, agent 0 flips its update ×100: with the mean, ω
    follows the attacker away from the agents; with the median it stays among them."""
    from federation.simulation import simulate

    gaps = {}
    for rule in ("mean", "median"):
        # αλ_u = 0.5: Eq. 10 moves ω halfway to each upload (at the default 10⁻³ the pull
        # itself bounds what one upload can do to ω)
        cfg = tiny.replace(participation="1.0", attack="sign-flip", attackers="0", attack_scale=100.0, robust=rule,
                           fed_alpha=0.5, lambda_u=1.0, lambda_e=0.0, rounds=2, out=str(tmp_path / rule), eval_every=0)
        simulate(cfg)
        with open(tmp_path / rule / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        gaps[rule] = float(rows[-1]["agents_dist_to_omega"])
        assert rows[-1]["honest_return"] != "" and rows[-1]["attackers_return"] != ""
        assert ("robust_fallback" in rows[-1]) == (rule != "mean")
    assert gaps["mean"] > 10 * gaps["median"]  # measured: 34 times


def test_the_attack_settings_reach_the_configuration():
    cfg = RunConfig.of(attack="free-ride", attackers="1", robust="krum", robust_f=0)
    assert cfg.attack.kind == "free-ride" and cfg.robust.rule == "krum"
    with pytest.raises(ConfigError):
        RunConfig.of(attack="free-ride", attackers="99").validated()
