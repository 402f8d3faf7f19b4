"""FPF's settings for the authors' code against hand computations on tiny arrays: raw-θ
uploads with η = 1.5, the 1e-3 pull toward each anchor, the pull period, the split of the
upload coefficient from the pull, per-agent initial policies, ω̄'s reward as level or
increments, and the plain DQN target."""

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord
from gymnasium import spaces

from clients import learners
from clients.anchors import Anchors
from clients.dqn import DQNConfig, double_dqn_target
from clients.networks import NetworkConfig, flat, policy_seed, to_record
from clients.ppo import PPOConfig
from clients.settings import ConfigError
from federation import presets
from federation.config import RunConfig
from strategies.federated_policy import egalitarian_reward
from strategies.fpf import FPF, FPFConfig, federation_events, fpf_aggregate, fpf_upload
from strategies.participation import Participation

SHAPES = dict(space=spaces.Box(-1, 1, (2,), np.float32), num_actions=1, state_space=spaces.Box(-1, 1, (4,), np.float32),
              net=NetworkConfig(hidden=1, layers=0))


class Reply:
    def __init__(self, content):
        self.content = content

    def has_error(self):
        return False


def record(weight, bias) -> ArrayRecord:
    return ArrayRecord({"0.weight": Array(np.array([weight], np.float32)), "0.bias": Array(np.array([bias], np.float32))})


def arrays(rec: ArrayRecord) -> tuple[np.ndarray, np.ndarray]:
    return rec["0.weight"].numpy()[0], rec["0.bias"].numpy()


OMEGA0 = record([1.0, -2.0], 0.5)


def authors(**overrides) -> FPF:
    """FPF as the authors' classic-games code: 3 agents, the first two participate."""
    values = dict(eta=1.5, upload="raw", fed_alpha=1e-3, lambda_u=1.0, lambda_e=1.0, pull="everyone") | overrides
    return FPF(Participation.parse("ids:0,1", "fixed", 3), 0, OMEGA0, **SHAPES, **values)


def test_authors_server_update_is_one_and_a_half_mean_minus_half_omega():
    theta1, theta2 = record([3.0, 0.0], 1.0), record([-1.0, 4.0], 2.0)
    omega, metrics = authors().aggregate_train(1, [Reply({"shared": theta1}), Reply({"shared": theta2}), Reply({})])
    w, b = arrays(omega)
    # mean θ_p = [1, 2], 1.5; ω = [1, -2], 0.5: 1.5·[1, 2] - 0.5·[1, -2] = [1, 4]; 1.5·1.5 - 0.25 = 2
    np.testing.assert_allclose(w, [1.0, 4.0], rtol=1e-6)
    np.testing.assert_allclose(b, [2.0], rtol=1e-6)
    assert metrics["uploads"] == 2
    # then ω <- ω - αλ_e(ω - ω̄), ω̄ = ω's start [1, -2], 0.5: [1, 4] - 1e-3·[0, 6] = [1, 3.994]
    w, b = arrays(authors(omega_pull="interpolate").aggregate_train(1, [Reply({"shared": theta1}),
                                                                       Reply({"shared": theta2})])[0])
    np.testing.assert_allclose(w, [1.0, 3.994], rtol=1e-6)
    np.testing.assert_allclose(b, [2.0 - 1e-3 * 1.5], rtol=1e-6)


def test_authors_pull_is_1e3_toward_each_anchor_for_every_agent():
    fpf = authors()
    fpf.members = fpf.participation.members(1, 0)
    for agent in (0, 2):  # a participant and a non-participant
        entries, records = fpf.instructions(agent, 1, OMEGA0)
        assert entries == {"alpha-lambda-u": pytest.approx(1e-3), "alpha-lambda-e": pytest.approx(1e-3),
                           "anchor-step": "round"}
        assert set(records) == {"omega", "omega-bar"}
    module = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        module.weight.copy_(torch.tensor([[1.0, 2.0]]))
    anchors = Anchors(omega={"weight": torch.tensor([[3.0, 0.0]])}, omega_bar={"weight": torch.tensor([[1.0, 4.0]])},
                      weight_u=1e-3, weight_e=1e-3)
    anchors.interpolate(module)
    # θ - 1e-3·(θ - ω) - 1e-3·(θ - ω̄) = [1 - 1e-3·(-2) - 0, 2 - 1e-3·2 - 1e-3·(-2)] = [1.002, 2]
    np.testing.assert_allclose(module.weight.detach().numpy(), [[1.002, 2.0]], rtol=1e-6)


def test_pull_period_counts_the_federation_events_of_each_round():
    # B = 16 episodes a round, an event every 10: episodes 1-16 hold 10; 17-32 hold 20, 30; 33-48 hold 40
    assert [federation_events(r, 16, 10) for r in range(1, 6)] == [1, 2, 1, 2, 2]
    assert [federation_events(r, 5, 10) for r in range(1, 5)] == [0, 1, 0, 1]
    assert [federation_events(r, 10, 10) for r in range(1, 4)] == [1, 1, 1]
    assert [federation_events(r, 16, 0) for r in range(1, 4)] == [1, 1, 1]  # 0: once per round

    fpf = authors(pull_every=10, episodes_per_round=5)
    fpf.members = fpf.participation.members(1, 0)
    assert fpf.instructions(0, 1, OMEGA0) == ({}, {})  # round 1: episodes 1-5, no event, no pull
    assert fpf.instructions(0, 2, OMEGA0)[0]["alpha-lambda-u"] == pytest.approx(1e-3)
    theta = record([3.0, 0.0], 1.0)
    omega, metrics = fpf.aggregate_train(1, [Reply({"shared": theta})])  # no event: ω stays
    np.testing.assert_array_equal(arrays(omega)[0], [1.0, -2.0])
    assert metrics["uploads"] == 0
    np.testing.assert_allclose(arrays(fpf.aggregate_train(2, [Reply({"shared": theta})])[0])[0], [4.0, 1.0])

    twice = authors(pull_every=10, episodes_per_round=16)
    twice.members = twice.participation.members(1, 0)
    assert twice.instructions(0, 2, OMEGA0)[0]["pull-repeats"] == 2
    assert "pull-repeats" not in twice.instructions(0, 1, OMEGA0)[0]
    module = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        module.weight.fill_(1.0)
    moved = Anchors(omega={"weight": torch.zeros(1, 1)}, weight_u=0.5, repeats=2).interpolate(module)
    assert module.weight.item() == pytest.approx(0.25)  # (1 - 0.5)² · 1
    assert moved == pytest.approx(0.75)


@pytest.mark.parametrize("seed", range(5))
def test_split_upload_and_pull_defaults_reproduce_the_product_form(seed):
    rng = np.random.default_rng(seed)
    w0, b0 = rng.normal(size=2), rng.normal()
    start = record(w0, b0)
    thetas = [record(rng.normal(size=2), rng.normal()) for _ in range(2)]
    fpf = FPF(Participation.parse("ids:0,1", "fixed", 3), 0, start, **SHAPES)  # today's defaults
    s = FPFConfig()
    assert s.upload_coefficient == s.fed_alpha * s.lambda_u
    omega = fpf.aggregate_train(1, [Reply({"shared": t}) for t in thetas])[0]
    # the product form: ω_up = ω - αλ_u(ω - θ), then [FPF Eq. 11], in float32 as before
    w = [start[k].numpy() for k in ("0.weight", "0.bias")]
    ups = [fpf_upload(w, [t[k].numpy() for k in ("0.weight", "0.bias")], s.fed_alpha, s.lambda_u) for t in thetas]
    expected = fpf_aggregate(w, ups, s.eta)
    np.testing.assert_array_equal(omega["0.weight"].numpy(), expected[0].astype(np.float32))
    np.testing.assert_array_equal(omega["0.bias"].numpy(), expected[1].astype(np.float32))
    fpf.members = fpf.participation.members(1, 0)
    entries = fpf.instructions(0, 1, start)[0]
    assert (entries["alpha-lambda-u"], entries["alpha-lambda-e"]) == (s.fed_alpha * s.lambda_u, s.fed_alpha * s.lambda_e)

    # set apart: the upload moves by 0.5 while the pull stays 0.01
    apart = FPF(Participation.parse("ids:0", "fixed", 3), 0, start, **SHAPES, upload_alpha=0.5)
    got = arrays(apart.aggregate_train(1, [Reply({"shared": thetas[0]})])[0])[0]
    np.testing.assert_allclose(got, w0 - 0.5 * (w0 - thetas[0]["0.weight"].numpy()[0]), rtol=1e-5)
    apart.members = apart.participation.members(1, 0)
    assert apart.instructions(0, 1, start)[0]["alpha-lambda-u"] == pytest.approx(0.01)


def test_conflicting_upload_settings_are_refused():
    with pytest.raises(ConfigError, match="--upload raw"):
        FPFConfig(upload="raw", upload_alpha=0.5).validate()
    with pytest.raises(ConfigError, match="--upload-alpha must be -1"):
        FPFConfig(upload_alpha=-0.5).validate()
    with pytest.raises(ConfigError, match="already a per-step reward"):
        FPFConfig(egalitarian="variance", egalitarian_form="level").validate()
    assert FPFConfig(upload="raw").upload_coefficient == 1.0


def test_per_agent_initial_policies_differ_by_agent_and_repeat_by_seed():
    space, net = spaces.Box(-1, 1, (3,), np.float32), NetworkConfig(hidden=4, layers=1, init_weights="per-agent")

    def start(agent, seed, n=net):
        return flat(to_record(learners.make("ppo", space, 2, PPOConfig(), n, seed=seed, agent=agent).policy))

    a0, a1 = start(0, 7), start(1, 7)
    assert not np.allclose(a0, a1)
    np.testing.assert_array_equal(a0, start(0, 7))  # the same seed, the same draw
    assert not np.allclose(a0, start(0, 8))
    shared = NetworkConfig(hidden=4, layers=1)
    np.testing.assert_array_equal(start(0, 7, shared), start(1, 7, shared))  # today: one initialisation
    assert policy_seed(shared, 7, 3) == 7 and policy_seed(net, 7, 3) != policy_seed(net, 7, 4)

    # the world plays each agent's own initial policy until the agent reports one
    import envs
    from federation.world import World
    game = envs.make_batched("matthew", 3, batch_size=1, seed=0)
    world = World(game, ["ppo"] * 3, net, 7)
    for agent in range(3):
        policy = learners.make("ppo", game.observation_space, game.num_actions, PPOConfig(), net, 7, agent).policy
        np.testing.assert_allclose(world.flat_policies([agent])[0], flat(to_record(policy)))


def test_egalitarian_reward_as_level_or_increments_on_three_steps():
    # returns so far: [2, 0], [2, 0], [2, 2]; -std: -1, -1, 0
    r = np.array([[2.0, 0.0], [0.0, 0.0], [0.0, 2.0]])[:, None, :]
    np.testing.assert_allclose(egalitarian_reward(r, "return-std", "level")[:, 0], [-1.0, -1.0, 0.0])
    np.testing.assert_allclose(egalitarian_reward(r, "return-std", "increments")[:, 0], [-1.0, 0.0, 1.0])
    # min so far: 0, 0, 2
    np.testing.assert_allclose(egalitarian_reward(r, "min", "level")[:, 0], [0.0, 0.0, 2.0])
    np.testing.assert_allclose(egalitarian_reward(r, "min", "increments")[:, 0], [0.0, 0.0, 2.0])
    # the authors' SSD reward: -std of the step's rewards
    np.testing.assert_allclose(egalitarian_reward(r, "step-std")[:, 0], [-1.0, 0.0, -1.0])
    with pytest.raises(ValueError, match="unknown egalitarian form"):
        egalitarian_reward(r, "return-std", "sum")


def test_plain_and_double_dqn_targets_by_hand():
    online, target = torch.nn.Linear(1, 2), torch.nn.Linear(1, 2)
    with torch.no_grad():
        online.weight.copy_(torch.tensor([[1.0], [3.0]]))
        online.bias.zero_()
        target.weight.copy_(torch.tensor([[5.0], [2.0]]))
        target.bias.zero_()
    obs, r, done = torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.0])
    # online Q(o') = [1, 3], [2, 6]: picks action 1; target Q(o') = [5, 2], [10, 4]
    double = double_dqn_target(online, target, r, obs, done, 0.9)
    np.testing.assert_allclose(double.numpy(), [1.0 + 0.9 * 2.0, 0.5])  # the second is terminal
    plain = double_dqn_target(online, target, r, obs, done, 0.9, double=False)
    np.testing.assert_allclose(plain.numpy(), [1.0 + 0.9 * 5.0, 0.5])
    assert DQNConfig().double is True  # today's behaviour stays the default
    assert RunConfig.of(dqn_double="false").dqn.double is False


@pytest.mark.parametrize("name", ["fpf-authors-matthew", "fpf-authors-job", "fpf-authors-manufacturing",
                                  "fpf-authors-ssd-harvest-3", "fpf-authors-ssd-cleanup-3"])
def test_authors_presets_have_the_first_half_plus_one_participate(name):
    cfg = RunConfig.from_mapping(presets.load(name) | {"out": "/tmp/preset-check"})
    members = Participation.from_config(cfg.joining, cfg.agents).members(1, cfg.seed)
    assert members == set(range(cfg.agents // 2 + 1))
    assert cfg.fpf.eta == 1.5 and cfg.fpf.pull == "everyone" and cfg.net.init_weights == "per-agent"
    assert cfg.fpf.fed_alpha * cfg.fpf.lambda_u == pytest.approx(1e-3)  # the pull toward ω
    assert cfg.world.batch % cfg.fpf.pull_every == 0  # one round holds whole federation events


def test_authors_mpe_dnf_moves_omega_by_c_toward_the_mean_and_does_not_train_it():
    """fpf-authors-mpe.toml: uploads ω - c(ω - θ), η = 1, no ω̄ pull, --no-fed-train: the new ω is
    ω + c(mean θ - ω) and the server's training hands it back untouched."""
    c = 0.0199
    dnf = FPF(Participation.parse("1.0", "fixed", 2), 0, OMEGA0, **SHAPES, eta=1.0, upload="eq10", fed_alpha=c,
              lambda_u=1.0, lambda_e=0.0, pull="everyone", fed_train=False)
    theta1, theta2 = record([3.0, 0.0], 1.0), record([-1.0, 4.0], 2.0)
    omega, _ = dnf.aggregate_train(1, [Reply({"shared": theta1}), Reply({"shared": theta2})])
    w, b = arrays(omega)
    # mean θ = [1, 2], 1.5; ω = [1, -2], 0.5: [1, -2] + c·[0, 4] and 0.5 + c·1
    np.testing.assert_allclose(w, [1.0, -2.0 + 4 * c], rtol=1e-6)
    np.testing.assert_allclose(b, [0.5 + c], rtol=1e-6)
    trained, metrics = dnf.federated_training(1, None, omega)  # no rollout is read
    assert trained is omega and metrics == {}
