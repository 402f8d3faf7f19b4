"""Poisoned uploads and the robust rules that withstand them, against hand computations."""

import csv

import numpy as np
import pytest

import run_sim
from clients.attacks import AttackConfig, poison
from federation.config import ConfigError, RunConfig
from strategies.fpf import fpf_aggregate
from flwr.server.strategy.aggregate import (aggregate, aggregate_bulyan, aggregate_krum, aggregate_median,
                                            aggregate_trimmed_avg)
from strategies.robust import (Bulyan, Krum, Mean, Median, MultiKrum, RobustConfig, TrimmedMean, make_aggregator,
                               minimum_uploads, robust_aggregate)

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
    (["--attack", "bribe"], "--attack: unknown value 'bribe'; valid choices: none, sign-flip, noise, free-ride"),
    (["--attack", "noise"], "attack noise needs --attackers"),
    (["--robust", "average"], "--robust: unknown value 'average'"),
    (["--robust", "trimmed-mean", "--robust-trim", "0.5"], "--robust-trim must be in [0, 0.5), got 0.5"),
    (["--robust", "bulyan", "--robust-f", "1", "--participation", "0.5"],
     "robust bulyan with robust-f 1 needs at least 7 uploads per round; fpf gets at most 5"),
    (["--robust-f", "-1"], "--robust-f must be in [0, 1000000], got -1"),
])
def test_bad_attack_and_defence_flags(args, message, capsys, tmp_path):
    assert run_sim.main(args + ["--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


def test_a_sign_flipping_attacker_moves_omega_and_the_median_resists_it(tiny, tmp_path):
    """FPF, 3 agents all participating, agent 0 flips its update ×100: with the mean, ω
    follows the attacker away from the agents; with the median it stays among them."""
    from federation.in_process import run_in_process

    gaps = {}
    for rule in ("mean", "median"):
        # αλ_u = 0.5: Eq. 10 moves ω halfway to each upload (at the default 10⁻³ the pull
        # itself bounds what one upload can do to ω)
        cfg = tiny.replace(participation="1.0", attack="sign-flip", attackers="0", attack_scale=100.0, robust=rule,
                           fed_alpha=0.5, lambda_u=1.0, lambda_e=0.0, rounds=2, out=str(tmp_path / rule), eval_every=0)
        run_in_process(cfg)
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


def test_an_attackers_profile_reaches_only_its_own_message_and_no_strategy_sees_it(tiny):
    """The round loop attaches agent 1's attack profile to agent 1's train message alone;
    nothing the strategy holds or sends says who attacks or how."""
    from flwr.supercore.task_identity import TaskIdentity

    from clients import protocol
    from federation.server_app import Federation

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1  # as in a ServerApp
    cfg = tiny.replace(strategy="fedavg", attack="noise", attackers="1", attack_scale=0.5).validated()
    fed = Federation(cfg)
    fed.bind({0: 10, 1: 11, 2: 12})
    sent = {}

    class Stop(Exception):
        pass

    def exchange(messages):
        sent.update({fed.node_agent[m.metadata.dst_node_id]: m for m in messages})
        raise Stop

    with pytest.raises(Stop):
        fed.play(1, exchange)
    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = None
    assert sorted(sent) == [0, 1, 2]
    assert dict(sent[1].content[protocol.ATTACK]) == {"kind": "noise", "scale": 0.5}
    assert all(protocol.ATTACK not in sent[a].content for a in (0, 2))
    assert all(not any("attack" in key for key in m.content[protocol.CONFIG]) for m in sent.values())
    assert fed.attackers == {1}
    strategy = fed.strategy
    assert not [name for name in dir(strategy) if "attack" in name]
    assert not [v for v in vars(strategy).values() if isinstance(v, AttackConfig) or v == {1} or v == frozenset({1})]


def test_the_agent_poisons_only_with_an_attack_profile():
    from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

    from clients import instructions, protocol

    before = {"w": np.array([1.0, 2.0])}
    shared = ArrayRecord({"w": Array(np.array([1.5, 1.0], np.float32))})
    config = ConfigRecord({"share": protocol.SHARE_PARAMETERS})
    honest = instructions.poison_upload(shared, before, config, RecordDict({}), seed=0)
    assert honest is shared
    profile = RecordDict({protocol.ATTACK: ConfigRecord({"kind": "sign-flip", "scale": 10.0})})
    bad = instructions.poison_upload(shared, before, config, profile, seed=0)
    np.testing.assert_allclose(bad["w"].numpy(), [1 - 5, 2 + 10])


# uploads of two layers, seven of them (enough for Bulyan with f = 1)
LAYERED = [[np.array([float(v), 2.0 * v]), np.array([[float(v) ** 2]])] for v in (1, 2, 3, 4, 5, 40, -30)]


@pytest.mark.parametrize("make, name, minimum, flower", [
    (lambda: Mean(), "mean", 1, lambda r: aggregate(r)),
    (lambda: Median(), "median", 1, lambda r: aggregate_median(r)),
    (lambda: TrimmedMean(0.2), "trimmed-mean", 1, lambda r: aggregate_trimmed_avg(r, 0.2)),
    (lambda: Krum(1), "krum", 5, lambda r: aggregate_krum(r, 1, 0)),
    (lambda: MultiKrum(1), "multikrum", 5, lambda r: aggregate_krum(r, 1, len(r) - 1)),
    (lambda: Bulyan(1), "bulyan", 7, lambda r: aggregate_bulyan(list(r), 1, aggregate_krum, to_keep=0)),
])
def test_each_aggregator_is_flowers_function(make, name, minimum, flower):
    agg = make()
    assert agg.name == name and agg.minimum_uploads == minimum
    assert type(make_aggregator(RobustConfig(rule=name, f=1, trim=0.2))) is type(agg)
    results = [([a.astype(np.float64) for a in u], 1) for u in LAYERED]
    out, metrics = agg.aggregate([list(u) for u in LAYERED])
    expected = flower(results)
    assert len(out) == len(expected) == 2
    for got, want in zip(out, expected):
        np.testing.assert_array_equal(got, want)
    assert metrics == ({} if name == "mean" else {"robust_fallback": 0.0})
    # the same as the rule by name
    by_name, fell_back = robust_aggregate([list(u) for u in LAYERED], name, f=1, trim=0.2)
    assert not fell_back and all(np.array_equal(a, b) for a, b in zip(by_name, out))


@pytest.mark.parametrize("agg", [Krum(1), MultiKrum(1), Bulyan(1)])
def test_too_few_uploads_fall_back_to_the_median_and_say_so(agg):
    few = [list(u) for u in LAYERED[:agg.minimum_uploads - 1]]
    out, metrics = agg.aggregate(few)
    expected = aggregate_median([([a.astype(np.float64) for a in u], 1) for u in few])
    assert all(np.array_equal(a, b) for a, b in zip(out, expected))
    assert metrics == {"robust_fallback": 1.0}
    assert minimum_uploads(agg.name, 1) == agg.minimum_uploads


def test_strategies_receive_their_aggregator_from_the_configuration(tiny):
    from federation.server_app import build

    for strategy, rule, cls in (("fpf", "median", Median), ("dnf", "krum", Krum), ("fedavg", "trimmed-mean", TrimmedMean),
                                ("lmf", "multikrum", MultiKrum), ("fpf", "mean", Mean)):
        cfg = tiny.replace(strategy=strategy, robust=rule, robust_f=0)
        _, built, _, _ = build(cfg)
        assert type(built.aggregator) is cls
    assert not hasattr(build(tiny.replace(strategy="independent"))[1], "aggregator")
