"""Rules of the sequential social dilemmas (Harvest, Cleanup) on hand-set states.

Most tests build a small custom map, put the agents where the test needs them
(``place_agents``) and check hand-computed outcomes. Coordinates are ``(row, col)``,
row 0 at the top. Beam tests draw the expected beam as a picture: ``*`` marks a cell
the beam reaches and ``^ > v <`` the shooter and its orientation.
"""

from __future__ import annotations

import numpy as np
import pytest

from envs.cleanup import (
    CONSTANTS, Cleanup, CleanupConstants, apple_spawn_probability, waste_spawn_probability,
)
from envs.gridworld import (
    CLEAN, DOWN, FIRE, LEFT, MOVE_DOWN, MOVE_LEFT, MOVE_RIGHT, MOVE_UP, RIGHT, STAY,
    TURN_CCW, TURN_CW, UP, Layout, resolve_moves,
)
from envs.harvest import Harvest
from envs.ssd import AGENT, AGENT_COLOURS, PALETTE, TERRAIN_COLOURS, WALL

OPEN = (  # 11 x 11: floor, walled in, five spawn points in row 9
    "@@@@@@@@@@@",
    "@         @",
    "@         @",
    "@         @",
    "@         @",
    "@         @",
    "@         @",
    "@         @",
    "@         @",
    "@PPPPP    @",
    "@@@@@@@@@@@",
)


def setup(cls, spots, rows=OPEN, **kwargs):
    """One copy of ``cls`` on ``rows`` with agent ``i`` at ``spots[i] = (row, col, o)``."""
    game = cls(num_agents=len(spots), map=rows, seed=0, **kwargs)
    game.place_agents(dict(enumerate(spots)), b=None)
    return game


def act(*actions: int) -> np.ndarray:
    return np.array([actions])


def picture(rows):
    """``(shooter (row, col, orientation), set of '*' cells)`` of a beam picture."""
    arrows = {"^": UP, ">": RIGHT, "v": DOWN, "<": LEFT}
    shooter, cells = None, set()
    for r, line in enumerate(rows):
        for c, ch in enumerate(line):
            if ch in arrows:
                shooter = (r, c, arrows[ch])
            elif ch == "*":
                cells.add((r, c))
    return shooter, cells


# ---------------------------------------------------------------- turns and moves

# Where an agent on (5, 5) ends up after each move, facing each way.
MOVES = {
    UP: {MOVE_LEFT: (5, 4), MOVE_RIGHT: (5, 6), MOVE_UP: (4, 5), MOVE_DOWN: (6, 5)},
    RIGHT: {MOVE_LEFT: (4, 5), MOVE_RIGHT: (6, 5), MOVE_UP: (5, 6), MOVE_DOWN: (5, 4)},
    DOWN: {MOVE_LEFT: (5, 6), MOVE_RIGHT: (5, 4), MOVE_UP: (6, 5), MOVE_DOWN: (4, 5)},
    LEFT: {MOVE_LEFT: (6, 5), MOVE_RIGHT: (4, 5), MOVE_UP: (5, 4), MOVE_DOWN: (5, 6)},
}


@pytest.mark.parametrize("cls", [Harvest, Cleanup])
@pytest.mark.parametrize("orientation, move, cell",
                         [(o, a, c) for o, row in MOVES.items() for a, c in row.items()])
def test_moves_are_relative_to_the_orientation(cls, orientation, move, cell):
    game = setup(cls, [(5, 5, orientation)])
    game.step(act(move))
    assert game.positions[0, 0].tolist() == list(cell)
    assert game.orientation[0, 0] == orientation


@pytest.mark.parametrize("orientation, cw, ccw",
                         [(UP, RIGHT, LEFT), (RIGHT, DOWN, UP), (DOWN, LEFT, RIGHT),
                          (LEFT, UP, DOWN)])
def test_turns(orientation, cw, ccw):
    game = setup(Harvest, [(5, 5, orientation), (3, 3, orientation)])
    game.step(act(TURN_CW, TURN_CCW))
    assert game.orientation[0].tolist() == [cw, ccw]
    assert game.positions[0].tolist() == [[5, 5], [3, 3]]
    game.step(act(STAY, FIRE))
    assert game.orientation[0].tolist() == [cw, ccw]


def test_walls_block_moves():
    game = setup(Harvest, [(1, 1, UP)])
    game.step(act(MOVE_UP))
    game.step(act(MOVE_LEFT))
    assert game.positions[0, 0].tolist() == [1, 1]
    game.step(act(MOVE_DOWN))
    assert game.positions[0, 0].tolist() == [2, 1]


def test_two_agents_aiming_at_one_cell_one_random_winner():
    winners = []
    for seed in range(40):
        game = setup(Harvest, [(5, 4, RIGHT), (5, 6, LEFT)])
        game.reset(seed=seed)
        game.place_agents({0: (5, 4, RIGHT), 1: (5, 6, LEFT)})
        game.step(act(MOVE_UP, MOVE_UP))  # both step forward into (5, 5)
        pos = game.positions[0].tolist()
        assert pos in ([[5, 5], [5, 6]], [[5, 4], [5, 5]])
        winners.append(0 if pos[0] == [5, 5] else 1)
    assert 10 <= sum(winners) <= 30  # a fair coin: both win often


@pytest.mark.parametrize(
    "spots, actions, after",
    [
        # swapping cells: both stay
        ([(5, 4, RIGHT), (5, 5, LEFT)], (MOVE_UP, MOVE_UP), [[5, 4], [5, 5]]),
        # following an agent that moves away: both move
        ([(5, 4, RIGHT), (5, 5, RIGHT)], (MOVE_UP, MOVE_UP), [[5, 5], [5, 6]]),
        # into an agent that stays (or turns, or fires): blocked
        ([(5, 4, RIGHT), (5, 5, UP)], (MOVE_UP, STAY), [[5, 4], [5, 5]]),
        ([(5, 4, RIGHT), (5, 5, UP)], (MOVE_UP, TURN_CW), [[5, 4], [5, 5]]),
        ([(5, 4, RIGHT), (5, 5, UP)], (MOVE_UP, FIRE), [[5, 4], [5, 5]]),
        # a chain behind a blocked agent is blocked
        ([(5, 3, RIGHT), (5, 4, RIGHT), (5, 5, UP)], (MOVE_UP, MOVE_UP, STAY),
         [[5, 3], [5, 4], [5, 5]]),
        # a chain behind a wall-blocked agent is blocked
        ([(5, 8, RIGHT), (5, 9, RIGHT)], (MOVE_UP, MOVE_UP), [[5, 8], [5, 9]]),
        # four agents turning round a 2 x 2 square all move
        ([(4, 4, RIGHT), (4, 5, DOWN), (5, 5, LEFT), (5, 4, UP)], (MOVE_UP,) * 4,
         [[4, 5], [5, 5], [5, 4], [4, 4]]),
    ],
)
def test_move_conflicts(spots, actions, after):
    game = setup(Harvest, spots)
    game.step(act(*actions))
    assert game.positions[0].tolist() == after


def test_resolve_moves_directly():
    # agents 0 and 1 aim at cell 10; 1 has the higher priority; 2 follows 0 into 0's cell
    target = np.array([[10, 10, 7]])
    moving = np.array([[True, True, True]])
    occupant = np.array([[-1, -1, 0]])
    done = resolve_moves(target, moving, occupant, np.array([[0.2, 0.9, 0.5]]))
    assert done.tolist() == [[False, True, False]]  # 0 lost, so 2 is blocked by it
    done = resolve_moves(target, moving, occupant, np.array([[0.9, 0.2, 0.5]]))
    assert done.tolist() == [[True, False, True]]


# ---------------------------------------------------------------- beams

BEAMS = [
    ("@@@@@@@@@@@",
     "@    *    @",
     "@   ***   @",
     "@   ***   @",
     "@   ***   @",
     "@   ***   @",
     "@   *^*   @",
     "@         @",
     "@         @",
     "@PPPPP    @",
     "@@@@@@@@@@@"),
    ("@@@@@@@@@@@",
     "@         @",
     "@         @",
     "@         @",
     "@   ***** @",
     "@   >*****@",
     "@   ***** @",
     "@         @",
     "@         @",
     "@PPPPP    @",
     "@@@@@@@@@@@"),
    ("@@@@@@@@@@@",
     "@         @",
     "@         @",
     "@         @",
     "@   *v*   @",
     "@   ***   @",
     "@   ***   @",
     "@   ***   @",
     "@   ***   @",
     "@    *    @",
     "@@@@@@@@@@@"),
    ("@@@@@@@@@@@",
     "@         @",
     "@         @",
     "@         @",
     "@ *****   @",
     "@*****<   @",
     "@ *****   @",
     "@         @",
     "@         @",
     "@PPPPP    @",
     "@@@@@@@@@@@"),
]


@pytest.mark.parametrize("drawing", BEAMS, ids=["up", "right", "down", "left"])
def test_beam_shape_in_every_orientation(drawing):
    shooter, cells = picture(drawing)
    assert len(cells) == 15  # a front ray of 5 and two side rays of 5
    game = setup(Harvest, [shooter])
    assert game.beam_cells(0) == cells
    cleanup = setup(Cleanup, [shooter])
    assert cleanup.beam_cells(0) == cells == cleanup.beam_cells(0, clean=True)


BLOCKED = (  # walls at (3, 5) and (4, 4); an apple at (5, 6) does not stop beams
    "@@@@@@@@@@@",
    "@         @",
    "@         @",
    "@    @    @",
    "@   @     @",
    "@     A   @",
    "@         @",
    "@         @",
    "@         @",
    "@PPPPP    @",
    "@@@@@@@@@@@",
)


def test_beams_stop_before_walls_and_on_the_first_agent():
    # agent 0 fires up from (6, 5); agent 1 on (4, 6) shields agent 2 on (2, 6)
    game = setup(Harvest, [(6, 5, UP), (4, 6, DOWN), (2, 6, DOWN)], rows=BLOCKED)
    assert game.beam_cells(0) == {(5, 5), (4, 5), (6, 4), (5, 4), (6, 6), (5, 6), (4, 6)}
    _, rewards, _, _ = game.step(act(FIRE, STAY, STAY))
    assert rewards.tolist() == [[-1.0, -50.0, 0.0]]
    assert game.positions[0, 1].tolist() == [4, 6]  # no time-out by default


def test_two_beams_on_one_agent_cost_it_twice():
    game = setup(Harvest, [(6, 5, UP), (2, 5, DOWN), (4, 5, LEFT), (8, 2, UP)])
    _, rewards, _, _ = game.step(act(FIRE, FIRE, STAY, STAY))
    assert rewards.tolist() == [[-1.0, -1.0, -100.0, 0.0]]


def test_firing_at_nothing_costs_one_and_cleaning_nothing():
    game = setup(Cleanup, [(5, 5, UP), (8, 8, UP)])
    _, rewards, _, _ = game.step(act(FIRE, CLEAN))
    assert rewards.tolist() == [[-1.0, 0.0]]


QUIET = CleanupConstants(0.4, 0.0, 0.0, 0.0)  # nothing ever spawns
RIVER = (
    "@@@@@@@@@@",
    "@HHHHHH  @",
    "@RHRHH P @",
    "@HHHHHH  @",
    "@P       @",
    "@@@@@@@@@@",
)


def test_cleaning_beam_turns_the_first_waste_of_each_ray_into_river():
    game = setup(Cleanup, [(2, 7, LEFT)], rows=RIVER, constants=QUIET)
    assert game.beam_cells(0, clean=True) == {(2, 6), (2, 5), (1, 7), (1, 6), (3, 7), (3, 6)}
    assert game.beam_cells(0) == {(2, 6), (2, 5), (2, 4), (2, 3), (2, 2), (1, 7), (1, 6),
                                  (1, 5), (1, 4), (1, 3), (3, 7), (3, 6), (3, 5), (3, 4),
                                  (3, 3)}  # the penalty beam passes over waste
    _, rewards, _, _ = game.step(act(CLEAN))
    assert rewards.tolist() == [[0.0]]
    assert game.ascii()[1:4] == ["@HHHHHR  @", "@RHRHR 0 @", "@HHHHHR  @"]
    game.step(act(CLEAN))
    assert game.ascii()[1:4] == ["@HHHHRR  @", "@RHRRR 0 @", "@HHHHRR  @"]


def test_cleaning_beam_stops_on_an_agent():
    game = setup(Cleanup, [(2, 7, LEFT), (2, 6, UP)], rows=RIVER, constants=QUIET)
    assert (2, 5) not in game.beam_cells(0, clean=True)
    _, rewards, _, _ = game.step(act(CLEAN, STAY))
    assert rewards.tolist() == [[0.0, 0.0]]
    assert game.ascii()[2] == "@RHRHH10 @"


# ---------------------------------------------------------------- rewards and time-outs


def test_apple_gives_one_and_disappears():
    rows = ("@@@@@@@", "@  A  @", "@     @", "@PP   @", "@@@@@@@")
    game = setup(Harvest, [(2, 3, UP), (3, 1, UP)], rows=rows)
    _, rewards, _, _ = game.step(act(MOVE_UP, STAY))
    assert rewards.tolist() == [[1.0, 0.0]]
    game.step(act(MOVE_DOWN, STAY))
    _, rewards, _, _ = game.step(act(MOVE_UP, STAY))
    assert rewards.tolist() == [[0.0, 0.0]]  # a lone apple cell never regrows
    assert game.ascii()[1] == "@  0  @"


def test_hit_agent_leaves_for_the_time_out_and_comes_back_on_a_spawn_point():
    game = setup(Harvest, [(6, 5, UP), (4, 5, DOWN)], timeout=3)
    obs, rewards, _, _ = game.step(act(FIRE, STAY))  # step 1: agent 1 is hit
    assert rewards.tolist() == [[-1.0, -50.0]]
    for step in (2, 3):
        assert game.positions[0, 1].tolist() == [-1, -1] and game.away[0, 1] == 5 - step
        assert not obs[0, 1].any() and obs[0, 0].any()
        assert "1" not in "".join(game.ascii())
        assert game.beam_cells(0) == picture(BEAMS[0])[1]  # nothing stops the beam now
        state = game.state()[0, -8:]  # agent 1: away, (5 - step) / 3 of its time-out left
        np.testing.assert_allclose(state, [0, 0, 0, 0, 0, 0, 0, (5 - step) / 3], rtol=1e-6)
        obs, rewards, _, _ = game.step(act(FIRE, FIRE))  # agent 1's actions do nothing
        assert rewards.tolist() == [[-1.0, 0.0]]
    assert game.away[0, 1] == 1 and game.positions[0, 1].tolist() == [-1, -1]
    obs, rewards, _, _ = game.step(act(STAY, FIRE))  # step 4: back at the end
    assert rewards.tolist() == [[0.0, 0.0]]
    row, col = game.positions[0, 1]
    assert row == 9 and 1 <= col <= 5 and game.away[0, 1] == 0
    assert obs[0, 1].any() and "1" in game.ascii()[9]
    _, rewards, _, _ = game.step(act(STAY, FIRE))  # and acts again
    assert rewards[0, 1] == -1.0


# ---------------------------------------------------------------- views

# Agent 0 on (5, 5) facing each way; agent 1 two cells ahead, agent 2 one to its right.
AHEAD_RIGHT = {UP: ((3, 5), (5, 6)), RIGHT: ((5, 7), (6, 5)), DOWN: ((7, 5), (5, 4)),
               LEFT: ((5, 3), (4, 5))}


@pytest.mark.parametrize("cls", [Harvest, Cleanup])
@pytest.mark.parametrize("orientation", [UP, RIGHT, DOWN, LEFT])
def test_view_points_the_agent_up(cls, orientation):
    ahead, right = AHEAD_RIGHT[orientation]
    game = setup(cls, [(5, 5, orientation), (*ahead, UP), (*right, UP)])
    obs, _, _, _ = game.step(act(STAY, STAY, STAY))
    view = obs[0, 0]
    assert view.shape == (15, 15, 3) and view.dtype == np.uint8
    assert view[7, 7].tolist() == AGENT_COLOURS[0].tolist()  # itself, in its own colour
    assert view[5, 7].tolist() == AGENT_COLOURS[1].tolist()  # two ahead: top-centre
    assert view[7, 8].tolist() == AGENT_COLOURS[2].tolist()  # one to the right
    # the wall 5 cells away on all four sides, the outside beyond it black
    for pixel in [(2, 7), (12, 7), (7, 2), (7, 12)]:
        assert view[pixel].tolist() == TERRAIN_COLOURS[WALL].tolist()
    for pixel in [(1, 7), (13, 7), (7, 1), (7, 13), (0, 0), (14, 14)]:
        assert view[pixel].tolist() == [0, 0, 0]


@pytest.mark.parametrize("cls", [Harvest, Cleanup])
def test_views_match_gathering_the_view_offsets(cls):
    """The fast rotated-canvas views equal a direct gather of ``Layout.view_offsets``."""
    game = cls(num_agents=5, batch_size=3, seed=1, timeout=3)
    rng = np.random.default_rng(0)
    away = 0
    for _ in range(60):
        obs, *_ = game.step(rng.integers(0, game.num_actions, (3, 5)))
        on = game.away == 0
        away += (~on).sum()
        codes = game.grid.copy()
        codes[game._copy[on], game.pos[on]] = AGENT + game._index[on]
        idx = game.layout.view_offsets[game.orientation] + game.pos[..., None]
        expected = PALETTE[np.take_along_axis(codes[:, None], idx, axis=2)]
        expected[~on] = 0
        np.testing.assert_array_equal(obs, expected.reshape(obs.shape))
    assert away > 0  # time-outs happened


def test_layout_view_offsets_by_hand():
    lay = Layout(OPEN, "@ P")
    wide = lay.padded_shape[1]
    # pixel (6, 7): one cell ahead; pixel (7, 8): one to the right
    assert lay.view_offsets[UP][6 * 15 + 7] == -wide and lay.view_offsets[UP][7 * 15 + 8] == 1
    assert lay.view_offsets[RIGHT][6 * 15 + 7] == 1 and lay.view_offsets[RIGHT][7 * 15 + 8] == wide
    assert lay.view_offsets[DOWN][6 * 15 + 7] == wide and lay.view_offsets[DOWN][7 * 15 + 8] == -1
    assert lay.view_offsets[LEFT][6 * 15 + 7] == -1 and lay.view_offsets[LEFT][7 * 15 + 8] == -wide


# ---------------------------------------------------------------- Harvest regrowth

ORCHARD = (
    "@@@@@@@",
    "@AAAAA@",
    "@AAAAA@",
    "@AAAAA@",
    "@PP   @",
    "@@@@@@@",
)
APPLES = [(1, 1), (1, 2), (1, 3), (2, 1), (3, 4), (3, 5)]
# Regrowth probability of each cell with APPLES, agent 0 on (2, 3), agent 1 on (4, 1):
# k = apples among the 8 neighbours, p = [0, .005, .02, .05][min(k, 3)].
EXPECTED = [
    [0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0.005, 0, 0],   # (1, 4): k = 1; (1, 5): k = 0 (2 cells from (1, 3))
    [0, 0, 0.05, 0, 0.05, 0.02, 0],  # (2, 2): k = 4; (2, 3): agent; (2, 4): 3; (2, 5): 2
    [0, 0.005, 0.005, 0.005, 0, 0, 0],  # (3, 1..3): k = 1
    [0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0],
]


def orchard(batch_size=1, seed=0):
    game = Harvest(num_agents=2, batch_size=batch_size, map=ORCHARD, seed=seed)
    game.set_cells(" ", [(r, c) for r in (1, 2, 3) for c in range(1, 6)], b=None)
    game.set_cells("A", APPLES, b=None)
    game.place_agents({0: (2, 3, UP), 1: (4, 1, UP)}, b=None)
    return game


def test_regrowth_probability_by_apples_in_the_3x3_neighbourhood():
    game = orchard()
    np.testing.assert_array_equal(game.regrowth_probabilities()[0], EXPECTED)


def test_regrowth_frequencies_follow_the_probabilities():
    game = orchard(batch_size=4000, seed=3)
    game.step(np.full((4000, 2), STAY))
    grown = np.array([[row[c] == "A" for c in range(7)] for b in range(4000)
                      for row in [game.ascii(b)[2]]])  # row 2 of every copy
    counts = grown.sum(axis=0)
    assert counts[3] == 0 and counts[1] == 4000  # the agent's cell; an old apple
    assert 140 <= counts[2] <= 260  # p = 0.05: 200 +- 14
    assert 140 <= counts[4] <= 260  # p = 0.05
    assert 45 <= counts[5] <= 115  # p = 0.02: 80 +- 9
    first = np.array([game.ascii(b)[1][4:6] for b in range(4000)])
    assert 5 <= (first == "A ").sum() + (first == "AA").sum() <= 40  # (1, 4): p = 0.005
    assert not np.char.endswith(first, "A").any()  # (1, 5): k = 0, never


# ---------------------------------------------------------------- Cleanup spawning


def test_apple_probability_by_waste_density():
    canonical, fpf = CONSTANTS["canonical"], CONSTANTS["fpf"]
    d = [0.0, 0.2, 0.39, 0.4, 0.5, 1.0]
    np.testing.assert_allclose(apple_spawn_probability(d, canonical),
                               [0.05, 0.025, 0.00125, 0, 0, 0], atol=1e-15)
    # fpf: full rate up to the restoration threshold 0.1, nothing from 0.7
    d = [0.0, 0.1, 0.4, 0.69, 0.7]
    np.testing.assert_allclose(apple_spawn_probability(d, fpf),
                               [0.3, 0.3, 0.15, 0.005, 0], atol=1e-12)


def test_waste_probability_by_density_and_clean_river():
    canonical = CONSTANTS["canonical"]
    np.testing.assert_allclose(
        waste_spawn_probability([0.0, 0.2, 0.2, 0.2, 0.4, 0.9], [1, 1, 3, 0, 10, 10], canonical),
        [0.5, 0.5, 0.875, 0.0, 0.0, 0.0],
    )
    assert waste_spawn_probability(0.5, 10, CONSTANTS["fpf"]) == 1 - 0.5 ** 10


def test_constants_are_checked():
    assert CONSTANTS["lio-7"] == CleanupConstants(0.6, 0.0, 0.5, 0.5)
    with pytest.raises(ValueError, match="restoration < depletion"):
        CleanupConstants(0.4, 0.4, 0.5, 0.05)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        CleanupConstants(0.4, 0.0, 1.5, 0.05)


STREAM = (  # five river cells, one with waste; a stream cell; two apple-spawn cells
    "@@@@@@@@",
    "@HRRRRS@",
    "@ BB PP@",
    "@@@@@@@@",
)


def test_density_and_spawn_probabilities_of_a_state():
    game = Cleanup(num_agents=2, map=STREAM, seed=0)
    game.set_cells("H", [(1, 1)])
    game.set_cells("R", [(1, 2), (1, 3), (1, 4), (1, 5)])
    assert game.waste_density().tolist() == [0.2]  # the stream does not count
    np.testing.assert_allclose(game.apple_probability(), [0.025])
    np.testing.assert_allclose(game.waste_probability(), [1 - 0.5 ** 4])
    game.set_cells("H", [(1, 2)])
    assert game.waste_density().tolist() == [0.4]
    assert game.apple_probability().tolist() == [0.0] == game.waste_probability().tolist()
    game.set_cells("R", [(1, 1), (1, 2)])
    np.testing.assert_allclose(game.apple_probability(), [0.05])
    np.testing.assert_allclose(game.waste_probability(), [1 - 0.5 ** 5])


def test_spawning_frequencies_below_the_depletion_threshold():
    game = Cleanup(num_agents=2, batch_size=4000, map=STREAM, seed=1)
    game.set_cells("H", [(1, 1)], b=None)
    game.set_cells("R", [(1, 2), (1, 3), (1, 4), (1, 5)], b=None)
    game.set_cells(" ", [(2, 2), (2, 3)], b=None)
    game.step(np.full((4000, 2), STAY))
    rivers = np.array([list(game.ascii(b)[1][1:6]) for b in range(4000)])
    assert (rivers[:, 0] == "H").all()  # waste stays
    new = (rivers[:, 1:] == "H").sum(axis=1)
    assert new.max() == 1  # at most one waste cell per step
    assert 3670 <= new.sum() <= 3830  # p = 1 - 0.5 ** 4 = 0.9375: 3750 +- 15
    per_cell = (rivers[:, 1:] == "H").sum(axis=0)
    assert per_cell.min() >= 820 and per_cell.max() <= 1060  # uniform: 937 +- 27 each
    apples = sum(game.ascii(b)[2][2:4].count("A") for b in range(4000))
    assert 140 <= apples <= 260  # 8000 cells at p = 0.025: 200 +- 14


def test_nothing_spawns_at_the_depletion_threshold():
    game = Cleanup(num_agents=2, batch_size=500, map=STREAM, seed=1)
    game.set_cells("H", [(1, 1), (1, 2)], b=None)
    game.set_cells("R", [(1, 3), (1, 4), (1, 5)], b=None)
    game.set_cells(" ", [(2, 2), (2, 3)], b=None)
    for _ in range(3):
        game.step(np.full((500, 2), STAY))
    rows = [game.ascii(b) for b in range(500)]
    assert all(r[1] == "@HHRRRS@" and r[2][:4] == "@   " for r in rows)


# ---------------------------------------------------------------- global state


def test_state_by_hand():
    rows = ("@@@@@@", "@A PP@", "@@@@@@")
    game = setup(Harvest, [(1, 3, RIGHT), (1, 4, LEFT)], rows=rows)
    plane = np.zeros(18)
    plane[1 * 6 + 1] = 1  # the apple on (1, 1)
    expected = [*plane, 0.5, 0.6, 0, 1, 0, 0, 1, 0, 0.5, 0.8, 0, 0, 0, 1, 1, 0]
    np.testing.assert_allclose(game.state()[0], expected, rtol=1e-6)
    assert game.state().dtype == np.float32 and game.state_space.contains(game.state()[0])

    cleanup = setup(Cleanup, [(2, 5, DOWN), (2, 6, UP)], rows=STREAM)
    cleanup.set_cells("R", [(1, 2), (1, 3), (1, 4), (1, 5)])  # undo any spawned waste
    state = cleanup.state()[0]
    waste = np.zeros(32)
    waste[1 * 8 + 1] = 1  # (1, 1): the map's only H
    np.testing.assert_array_equal(state[32:64], waste)
    np.testing.assert_allclose(state[64:72], [2 / 3, 5 / 7, 0, 0, 1, 0, 1, 0], rtol=1e-6)
