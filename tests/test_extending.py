"""Games, strategies and learners from outside the package: by import path, by entry point,
the worked examples of docs/EXTENDING.md, PettingZoo's pursuit, and bad plug-ins refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from flwr.app import Array, ArrayRecord

import envs
import run_sim
from clients import learners, protocol
from clients.networks import NetworkConfig, Pixels
from federation.config import RunConfig
from federation.in_process import run_in_process
from strategies.participation import Participation

ROOT = Path(__file__).resolve().parents[1]
PURSUIT = "pettingzoo.sisl.pursuit_v5:parallel_env"
COMMONS = "examples.commons:parallel_env"
MEDIAN = "examples.median_fedavg:MedianFedAvg"
REINFORCE = "examples.reinforce:Reinforce"


def above_median_rule_holds(metrics: pd.DataFrame, n: int) -> None:
    """Every round: exactly the agents whose return was above the median were averaged
    (everyone when nobody's was), read from the game's own per-agent returns."""
    for _, row in metrics.iterrows():
        returns = np.array([row[f"return_agent_{i}"] for i in range(n)])
        above = returns > np.median(returns)
        expected = above if above.any() else np.ones(n, bool)
        averaged = np.array([row[f"averaged_agent_{i}"] for i in range(n)]) == 1.0
        assert (averaged == expected).all(), (returns, averaged)
        assert row["averaged"] == expected.sum()


# ---------------------------------------------------------------------- images and the CNN


def test_pursuit_keeps_its_images_and_agents_get_a_cnn():
    game = envs.make_batched(PURSUIT, None, batch_size=2, seed=0)
    assert game.num_agents == 8 and game.learners == [f"pursuer_{i}" for i in range(8)] and game.num_actions == 5
    space = game.observation_space
    assert space.shape == (7, 7, 3) and space.dtype == np.float32
    obs = game.reset(seed=3)
    assert obs.shape == (2, 8, 7, 7, 3) and obs.dtype == np.float32
    # the adapter only reshapes: the image is the env's own observation of pursuer_2 in copy 1
    direct = envs.make_batched(PURSUIT, None, batch_size=2, seed=0)
    direct.reset(seed=3)
    raw, _ = direct.envs[1].reset(seed=int(direct.seeds[1]))
    np.testing.assert_array_equal(obs[1, 2], raw["pursuer_2"])
    net = learners.learner_class("ppo").policy_network(space, game.num_actions, NetworkConfig(channels=4), 0)
    pixels = [m for m in net.modules() if isinstance(m, Pixels)]
    assert len(pixels) == 1 and pixels[0].shape == (7, 7, 3)
    assert (pixels[0].low, pixels[0].scale) == (0.0, 30.0)  # pursuit's bounds: 0..30
    import torch

    assert net(torch.as_tensor(obs)).shape == (2, 8, 5)


class Pictures:
    """A tiny ParallelEnv of images: ``dtype`` and ``high`` set the observation space."""

    metadata = {"name": "pictures"}

    def __init__(self, dtype=np.uint8, high=255):
        from gymnasium import spaces

        self.possible_agents, self.agents = ["a", "b"], []
        self.space = spaces.Box(0, high, (4, 5, 2), dtype)

    def observation_space(self, agent):
        return self.space

    def action_space(self, agent):
        from gymnasium import spaces

        return spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        return {a: np.full((4, 5, 2), 7, self.space.dtype) for a in self.agents}, {}

    def step(self, actions):
        obs = {a: np.full((4, 5, 2), 9 + actions[a], self.space.dtype) for a in self.agents}
        zero = dict.fromkeys(self.agents, 0.0)
        return obs, zero, dict.fromkeys(self.agents, False), dict.fromkeys(self.agents, False), {}


@pytest.mark.parametrize("dtype, high, kept", [(np.uint8, 255, np.uint8), (np.int64, 255, np.uint8),
                                               (np.int64, 1000, np.float32), (np.float64, 1.0, np.float32)])
def test_integral_images_become_uint8_and_the_others_float32(dtype, high, kept):
    from envs.pettingzoo_adapter import PettingZooGame

    game = PettingZooGame(lambda: Pictures(dtype, high), batch_size=2, episode_length=3, seed=0)
    assert game.observation_space.shape == (4, 5, 2) and game.observation_space.dtype == kept
    obs, *_ = game.step(np.array([[0, 1], [1, 1]]))
    assert obs.dtype == kept and obs[0, 1, 0, 0, 0] == 10 and obs[0, 0, 0, 0, 0] == 9
    net = learners.learner_class("dqn").policy_network(game.observation_space, 2, NetworkConfig(channels=2), 0)
    assert any(isinstance(m, Pixels) for m in net.modules())


# ---------------------------------------------------------------------- the worked examples


class FakeReply:
    def __init__(self, node, content):
        self.metadata, self.content = SimpleNamespace(src_node_id=node), content

    def has_error(self):
        return False


def test_median_fedavg_averages_exactly_the_agents_above_the_median():
    from examples.median_fedavg import MedianFedAvg

    strategy = MedianFedAvg(Participation.parse("1.0", "fixed", 4), 0)
    strategy.bind({0: 10, 1: 11, 2: 12, 3: 13})
    rewards = np.zeros((2, 3, 4), np.float32)  # [T, B, N]; returns 1, 5, 3, 7: median 4
    rewards[0, :, :] = [1.0, 5.0, 3.0, 7.0]
    assert strategy.train_rewards(rewards) is rewards
    replies = [FakeReply(10 + a, {protocol.SHARED: ArrayRecord({"w": Array(np.array([a, 10.0 * a], np.float32))})})
               for a in (3, 0, 2, 1)]
    arrays, metrics = strategy.aggregate_train(1, replies)
    np.testing.assert_allclose(arrays["w"].numpy(), [(1 + 3) / 2, (10 + 30) / 2])  # agents 1 and 3
    assert metrics["averaged"] == 2 and metrics["median_return"] == 4.0
    assert [metrics[f"averaged_agent_{a}"] for a in range(4)] == [0.0, 1.0, 0.0, 1.0]
    strategy.train_rewards(np.ones((2, 3, 4), np.float32))  # all equal: nobody above, so everyone
    arrays, metrics = strategy.aggregate_train(2, replies)
    np.testing.assert_allclose(arrays["w"].numpy(), [1.5, 15.0])
    assert metrics["averaged"] == 4


def test_the_three_examples_play_together_and_the_rule_shows_in_the_metrics(tmp_path):
    """The examples' game, strategy and learner in one run, the ClientApp resolving the
    learner from the name in its messages (as a SuperNode does)."""
    cfg = RunConfig.of(env=COMMONS, strategy=MEDIAN, learner=REINFORCE, agents=4, game_options="num_herders=4",
                       rounds=2, batch=2, hidden=16, layers=1, out=str(tmp_path / "run"), progress=False)
    assert cfg.label == "median-fedavg-reinforce"
    run_in_process(cfg, checkpoints=False)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert len(metrics) == 2
    above_median_rule_holds(metrics, 4)
    assert (metrics["agents_update_norm"] > 0).all() and "agents_pg_loss" in metrics


def test_commons_follows_its_rules():
    from examples.commons import parallel_env

    env = parallel_env(num_herders=2, max_cycles=3, rate=0.1, regrowth=0.5)
    obs, _ = env.reset(seed=0)
    g = env.grass
    np.testing.assert_allclose(obs["herder_0"], [g, 1.0])
    obs, rewards, term, trunc, _ = env.step({"herder_0": 2, "herder_1": 0})
    assert rewards == {"herder_0": pytest.approx(0.2 * g), "herder_1": 0.0}
    left = 0.8 * g
    assert env.grass == pytest.approx(left + 0.5 * left * (1 - left))
    env.step({"herder_0": 0, "herder_1": 0})
    *_, term, trunc, _ = env.step({"herder_0": 0, "herder_1": 0})
    assert trunc == {"herder_0": True, "herder_1": True} and env.agents == []


# ---------------------------------------------------------------------- bad plug-ins

PLUGINS = '''
import numpy as np
from gymnasium import spaces
from clients.learner import Learner
from clients.policies import SOFTMAX
from strategies.fedavg import FedAvg

class NotAStrategy:
    name = "plain"

class Nameless(FedAvg):
    name = "base"

class HalfLearner(Learner):
    name, kind = "half", SOFTMAX
    def __init__(self, *args):
        pass

class OddKind(Learner):
    name, kind = "odd", "boltzmann"
    def __init__(self, *args): pass
    @classmethod
    def policy_network(cls, *args): pass
    def train(self, *args): pass
    def state_dict(self): pass
    def load_state_dict(self, state): pass

class Comers:
    """Agent b joins after the first step."""
    possible_agents = ["a", "b"]
    def observation_space(self, agent): return spaces.Box(0, 1, (1,), np.float32)
    def action_space(self, agent): return spaces.Discrete(2)
    def reset(self, seed=None, options=None):
        self.agents = ["a", "b"]
        return {"a": np.zeros(1, np.float32), "b": np.zeros(1, np.float32)}, {}
    def step(self, actions):
        self.agents = ["a"]
        z = {"a": 0.0}
        return {"a": np.zeros(1, np.float32)}, z, {"a": False}, {"a": False}, {}

def comers():
    return Comers()

def broken(size=1):
    raise RuntimeError(f"no board of size {size}")
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    (tmp_path / "badplugins.py").write_text(PLUGINS)
    (tmp_path / "raising.py").write_text("raise ImportError('needs a GPU driver')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


BAD = [
    (["--env", "nosuchpackage.games:parallel_env"], "cannot import module 'nosuchpackage.games'"),
    (["--strategy", "raising:Anything"], "importing 'raising' failed: ImportError: needs a GPU driver"),
    (["--env", "pettingzoo.sisl.pursuit_v5:no_such_env"], "has no attribute 'no_such_env'"),
    (["--strategy", "badplugins:Missing"], "'badplugins' has no attribute 'Missing'"),
    (["--strategy", "badplugins:NotAStrategy"], "NotAStrategy is not a subclass of strategies.base.FederationStrategy"),
    (["--strategy", "badplugins:Nameless"], "sets no class attribute 'name'"),
    (["--learner", "badplugins:NotAStrategy"], "NotAStrategy is not a subclass of clients.learner.Learner"),
    (["--learner", "badplugins:HalfLearner"], "does not define policy_network, train, state_dict, load_state_dict"),
    (["--learner", "badplugins:OddKind"], "its 'kind' is 'boltzmann', not a policy kind"),
    (["--env", "pettingzoo.sisl.pursuit_v5:env"], "AEC environment"),
    (["--env", "pettingzoo.sisl.pursuit_v5:env"], "pettingzoo.utils.conversions.aec_to_parallel"),
    (["--env", "mpe2.simple_tag_v3:parallel_env", "--game-options", "continuous_actions=true"],
     "is played with continuous actions; learner ppo chooses discrete ones"),
    (["--env", "badplugins:broken", "--game-options", "size=3"], "RuntimeError: no board of size 3"),
    (["--env", "badplugins:comers"], "agents come and go"),
    (["--env", PURSUIT, "--agents", "3"], "8 learning agents"),
    (["--env", PURSUIT, "--learners", "pursuer_0,pursuer_9"], "['pursuer_9'] are not agents of the env"),
    (["--env", "matthew", "--learners", "pursuer_0"], "--learners names the learning agents of a PettingZoo game"),
    (["--strategy", "nosuchstrategy"], "or an import path module.path:Name"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_plugin_exits_2_naming_the_problem_before_anything_starts(argv, message, plugins, tmp_path, capsys):
    out = tmp_path / "never-written"
    try:
        code = run_sim.main(argv + ["--out", str(out), "--rounds", "1"])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert "Traceback" not in err and not out.exists()


def test_learners_choose_the_federations_agents_and_a_flag_sets_their_number():
    args = run_sim.parser().parse_args(["--env", PURSUIT, "--learners", "pursuer_3,pursuer_1", "--steps", "2"])
    [cfg] = run_sim.plan(args, [])
    assert cfg.agents == 2
    game = envs.make_batched(cfg.env, cfg.agents, **cfg.game_options())
    assert game.learners == ["pursuer_3", "pursuer_1"] and len(game.fixed_agents) == 6


def test_a_flower_run_config_names_plugins_as_text():
    """``flwr run`` hands the ServerApp every key as text; the names resolve there, and
    the learner's name travels to the agents in the learner record."""
    from federation.server_app import build, learner_config

    flat = RunConfig().to_flat() | {"env": COMMONS, "strategy": MEDIAN, "learner": REINFORCE, "agents": 3,
                                    "out": "/tmp/never-written-by-this-test", "hidden": 8}
    cfg = RunConfig.from_mapping({k: v for k, v in flat.items()})
    assert (cfg.env, cfg.strategy, cfg.learner) == (COMMONS, MEDIAN, REINFORCE)

    game, strategy, world, _ = build(cfg)
    assert type(strategy).__name__ == "MedianFedAvg" and game.learners == ["herder_0", "herder_1", "herder_2"]
    record = learner_config(cfg, world, REINFORCE)
    assert record["learner"] == REINFORCE and record["lr"] == 0.01 and record["gamma"] == 0.95


# ---------------------------------------------------------------------- entry points

ENTRY_POINTS = """\
[fedgames.games]
toy-commons = examples.commons:parallel_env

[fedgames.strategies]
toy-median = examples.median_fedavg:MedianFedAvg

[fedgames.learners]
toy-reinforce = examples.reinforce:Reinforce
"""


@pytest.fixture
def toy_package(tmp_path, monkeypatch):
    """An installed package as importlib.metadata sees one: a .dist-info on the path."""
    info = tmp_path / "site" / "fedgames_toys-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fedgames-toys\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(info.parent))
    return info.parent


def _env_with(path: Path) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), str(ROOT), os.environ.get("PYTHONPATH", "")])}


def test_entry_points_are_listed_in_help_and_resolve(toy_package, tmp_path):
    help_text = subprocess.run([sys.executable, "run_sim.py", "--help"], cwd=ROOT, env=_env_with(toy_package),
                               capture_output=True, text=True, timeout=120).stdout
    assert "toy-commons" in help_text and "toy-median" in help_text
    assert envs.available().count("toy-commons") == 1 and "matthew" in envs.available()
    assert "toy-reinforce" in learners.available()
    cfg = RunConfig.of(env="toy-commons", strategy="toy-median", learner="toy-reinforce", agents=3, rounds=1,
                       batch=2, hidden=8, layers=1, out=str(tmp_path / "run"), progress=False)
    run_in_process(cfg, checkpoints=False)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    above_median_rule_holds(metrics, 3)


@pytest.mark.slow
def test_entry_points_and_examples_run_through_run_sim(toy_package, tmp_path):
    """One Flower simulation (Ray workers import the plug-ins) with the three entry points."""
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "run_sim.py", "--env", "toy-commons", "--strategy", "toy-median",
                           "--learner", "toy-reinforce", "--agents", "3", "--rounds", "2", "--batch", "2",
                           "--hidden", "8", "--layers", "1", "--out", str(out), "--no-progress"],
                          cwd=ROOT, env=_env_with(toy_package), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    above_median_rule_holds(pd.read_csv(out / "metrics.csv"), 3)


# ---------------------------------------------------------------------- pursuit


@pytest.mark.slow
def test_pursuit_runs_with_fpf_lmf_and_independent(tmp_path):
    out = tmp_path / "pursuit"
    done = subprocess.run([sys.executable, "run_sim.py", "--runner", "in-process", "--env", PURSUIT, "--strategy", "fpf", "lmf", "independent",
                           "--rounds", "2", "--steps", "6", "--batch", "2", "--channels", "4", "--hidden", "16",
                           "--layers", "1", "--eval-every", "0", "--out", str(out), "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    for run in ("fpf_seed0", "lmf-ring_seed0", "independent_seed0"):
        metrics = pd.read_csv(out / run / "metrics.csv")
        assert list(metrics["round"]) == [1, 2] and metrics["trained_agents"].eq(8).all()
        assert {f"return_agent_{i}" for i in range(8)} <= set(metrics)
