"""Any PettingZoo ``ParallelEnv`` as a ``BatchedGame``: B copies stepped side by side.

``PettingZooGame(env_fn, learners)`` calls the zero-argument factory ``env_fn`` once per
copy and steps the copies one after another in a Python loop, which is simple and fast
enough for cheap games such as MPE. Decisions:

- **Learners and fixed agents.** ``learners`` names the PettingZoo agents that are the
  game's N agents, in that order (game agent ``i`` is ``learners[i]``; default: every
  possible agent). Every other agent is played inside the game by ``fixed_policy``,
  by default uniformly at random over its own actions. A fixed policy is a callable
  ``policy(agent, obs, rng) -> actions``: ``obs [k, d]`` float32 holds the agent's
  observations in the ``k`` copies where it is still live, the result is ``k`` ints
  in the agent's action range, and ``rng`` is the game's generator (the only source
  of randomness, so a seed fixes the fixed agents' play too).
- **Actions.** Every agent needs a ``Discrete`` action space, or every agent a ``Box``
  of rank 1 (e.g. MPE built with ``continuous_actions=True``); a mix raises
  ``ValueError`` at construction. With ``Box`` actions the game is *continuous*: the
  learners must share one action shape ``(A,)``, a learner's action ``a ∈ [-1, 1]^A``
  is played as ``low + (a + 1)/2·(high - low)`` in its own bounds, a random fixed agent
  draws uniformly within its bounds, and a fixed policy returns float arrays ``[k, A]``
  within them. With ``Discrete`` actions the shared action set is the largest learner's, ``A = max n_i``. A learner with
  ``n_i < A`` actions plays ``start_i + (a mod n_i)``: every action of the shared set
  is a valid move, so a policy over ``A`` actions never breaks the game, and each of
  the learner's own actions stays reachable. The cost: a uniform choice over ``A`` is
  uniform over the learner's actions only when ``n_i`` divides ``A``.
- **Observations.** Every agent needs a ``Box`` observation space. Images stay images:
  when every learner observes a ``Box`` of rank 3 (``H x W x C``) of one shape, the
  shared space is that shape, ``uint8`` when the learners' dtypes are integral with
  bounds in [0, 255] and float32 otherwise, so the agents' networks are CNNs
  (clients/networks.py). Anything else is flattened to float32 vectors; a learner with
  a shorter vector is padded with zeros at the end up to the longest, ``d = max d_i``,
  and the shared space is one float32 ``Box((d,))``. Its bounds are the elementwise
  minimum / maximum of the learners' bounds, 0 in padded positions.
- **Episodes.** All copies reset together; the base class truncates every copy at
  ``episode_length``, so the wrapped env must not end episodes sooner by itself (the
  MPE games set ``max_cycles = episode_length``). An agent the wrapped env terminates,
  or truncates before ``episode_length``, is reported ``terminated`` from that step
  on, with reward 0 and its last observation; a copy whose agents have all finished
  is not stepped again until the next reset. Agents do not come and go: every agent
  must be live after a reset, and an agent that appears later, or disappears without
  being terminated or truncated, raises ``ValueError``.
- **The env.** ``env_fn()`` must return a PettingZoo ``ParallelEnv``; an ``AECEnv``
  raises ``ValueError`` saying how to convert it
  (``pettingzoo.utils.conversions.aec_to_parallel``).
- **Seeding.** ``reset(seed)`` reseeds the game's generator (see ``BatchedGame``);
  every reset then draws one seed per copy from that generator and resets copy ``b``
  with it. So one seed fixes the copies' initial states and the random fixed agents.
  ``seeds`` holds the copies' seeds of the last reset and ``fixed_actions`` the fixed
  agents' actions of the last step (one dict per copy), so any episode can be replayed
  in the wrapped env itself.
- **State.** When the wrapped env has a ``Box`` ``state_space``, the global state is
  its ``state()``, flattened to float32. Otherwise it is every possible agent's last
  observation (fixed agents included) flattened and concatenated in
  ``possible_agents`` order, zeros for an agent that has not observed yet. (MPE's own
  state is exactly that concatenation.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv

from envs.base import BatchedGame, check_positive_int

FixedPolicy = Callable[[str, np.ndarray, np.random.Generator], np.ndarray]


class PettingZooGame(BatchedGame):
    """``batch_size`` copies of a PettingZoo ``ParallelEnv``; see the module docstring."""

    name = "pettingzoo"

    def __init__(
        self,
        env_fn: Callable[[], ParallelEnv],
        learners: Sequence[str] | None = None,
        batch_size: int = 1,
        episode_length: int = 25,
        seed: int | None = None,
        *,
        fixed_policy: FixedPolicy | None = None,
        observation: str | None = None,
    ) -> None:
        batch_size = check_positive_int("batch_size", batch_size)
        self.envs: list[ParallelEnv] = [check_parallel_env(env_fn()) for _ in range(batch_size)]
        probe = self.envs[0]
        self.possible_agents: list[str] = list(probe.possible_agents)
        learners = self.possible_agents if learners is None else list(learners)
        _check_learners(learners, self.possible_agents)
        self.learners: list[str] = learners
        self._index = {a: i for i, a in enumerate(learners)}
        self.fixed_agents = [a for a in self.possible_agents if a not in learners]
        if fixed_policy is not None and not callable(fixed_policy):
            raise ValueError(f"fixed_policy must be callable or None, got {fixed_policy!r}")
        self.fixed_policy = fixed_policy

        self._actions = _action_spaces(probe, self.possible_agents)
        self._obs_spaces = {a: _box(probe, a) for a in self.possible_agents}
        boxes = [space for a in learners if isinstance(space := self._actions[a], spaces.Box)]
        if boxes:
            shapes = {tuple(box.shape) for box in boxes}
            if len(shapes) != 1:
                raise ValueError(f"the learners' continuous actions must have one shape, got {sorted(shapes)}")
            self.action_shape = shapes.pop()
            self.num_actions = int(self.action_shape[0])
        else:
            self.num_actions = max(int(space.n) for a in learners if isinstance(space := self._actions[a], spaces.Discrete))
        self.obs_dim = max(self._obs_spaces[a].shape[0] for a in learners)
        # H x W x C when every learner sees an image of one shape (then kept as images)
        shapes = {tuple(probe.observation_space(a).shape) for a in learners}
        self.image_shape: tuple[int, ...] | None = shapes.pop() if len(shapes) == 1 else None
        if self.image_shape is not None and len(self.image_shape) != 3:
            self.image_shape = None
        self._obs_dtype: np.dtype = np.dtype(np.float32)
        if self.image_shape is not None and all(_is_byte_image(probe.observation_space(a)) for a in learners):
            self._obs_dtype = np.dtype(np.uint8)
        env_state = getattr(probe, "state_space", None)
        self._env_state = env_state if isinstance(env_state, spaces.Box) else None

        super().__init__(
            len(learners), batch_size, episode_length, seed,
            observation=observation,
        )
        self._raw: list[dict[str, np.ndarray]] = []
        # seeds of the copies' last reset, and the fixed agents' actions of the last step
        self.seeds = np.zeros(batch_size, dtype=np.int64)
        self.fixed_actions: list[dict[str, Any]] = [{} for _ in range(batch_size)]
        self._done = np.zeros((batch_size, self.num_agents), dtype=bool)
        self.reset()

    # ------------------------------------------------------------------ spaces

    def _observation_space(self) -> spaces.Box:
        if self.image_shape is not None:
            low = np.min([self._obs_spaces[a].low for a in self.learners], axis=0).reshape(self.image_shape)
            high = np.max([self._obs_spaces[a].high for a in self.learners], axis=0).reshape(self.image_shape)
            return spaces.Box(low.astype(self._obs_dtype), high.astype(self._obs_dtype), dtype=self._obs_dtype)
        low = np.full(self.obs_dim, np.inf, np.float32)
        high = np.full(self.obs_dim, -np.inf, np.float32)
        for a in self.learners:
            space, d = self._obs_spaces[a], self._obs_spaces[a].shape[0]
            low[:d], high[:d] = np.minimum(low[:d], space.low), np.maximum(high[:d], space.high)
            low[d:], high[d:] = np.minimum(low[d:], 0), np.maximum(high[d:], 0)  # padding
        return spaces.Box(low, high, dtype=np.float32)

    def _state_space(self) -> spaces.Box:
        if self._env_state is not None:
            low = self._env_state.low.ravel().astype(np.float32)
            high = self._env_state.high.ravel().astype(np.float32)
        else:
            low = np.concatenate([self._obs_spaces[a].low for a in self.possible_agents])
            high = np.concatenate([self._obs_spaces[a].high for a in self.possible_agents])
        return spaces.Box(low, high, dtype=np.float32)

    def _state(self) -> np.ndarray:
        if self._env_state is not None:
            rows = [np.asarray(env.state(), np.float32).ravel() for env in self.envs]
        else:
            rows = [
                np.concatenate([raw[a] for a in self.possible_agents]) for raw in self._raw
            ]
        return np.stack(rows).astype(np.float32)

    # ------------------------------------------------------------------ dynamics

    def _reset(self) -> np.ndarray:
        self.seeds = self.rng.integers(2**31, size=self.batch_size)
        self.fixed_actions = [{} for _ in self.envs]
        self._raw = []
        for env, s in zip(self.envs, self.seeds):
            obs, _ = env.reset(seed=int(s))
            missing = [a for a in self.possible_agents if a not in obs]
            if missing:
                raise ValueError(f"{self.name}: agents come and go: {missing} are not live after reset; the adapter "
                                 "needs every agent of possible_agents live from each reset")
            raw = {a: np.zeros(self._obs_spaces[a].shape, np.float32) for a in self.possible_agents}
            raw.update({a: _flat(o) for a, o in obs.items()})
            self._raw.append(raw)
        self._done[:] = False
        return self._learner_obs()

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fixed = self.fixed_actions = self._fixed_actions()
        rewards = np.zeros((self.batch_size, self.num_agents), np.float32)
        early = self.t + 1 < self.episode_length  # the env's truncation counts as an end
        for b, env in enumerate(self.envs):
            if not env.agents:
                continue
            joint = {}
            for agent in env.agents:
                if agent in fixed[b]:
                    joint[agent] = fixed[b][agent]
                else:
                    i = self._index[agent]
                    space = self._actions[agent]
                    if isinstance(space, spaces.Box):  # [-1, 1]^A onto the agent's bounds
                        joint[agent] = (space.low + (actions[b, i] + 1.0) / 2.0 * (space.high - space.low)).astype(
                            space.dtype)
                    else:
                        joint[agent] = int(space.start) + int(actions[b, i]) % int(space.n)
            obs, rew, term, trunc, _ = env.step(joint)
            _check_agents(self.name, joint, obs, env.agents, term, trunc)
            self._raw[b].update({a: _flat(o) for a, o in obs.items()})
            for i, agent in enumerate(self.learners):
                if agent in joint:
                    rewards[b, i] = rew.get(agent, 0.0)
                    ended = term.get(agent, False) or (early and trunc.get(agent, False))
                    self._done[b, i] |= bool(ended)
        return self._learner_obs(), rewards, self._done.copy()

    # ------------------------------------------------------------------ helpers

    def _fixed_actions(self) -> list[dict[str, Any]]:
        """This step's action of every live fixed agent, per copy."""
        out: list[dict[str, Any]] = [{} for _ in self.envs]
        for agent in self.fixed_agents:
            live = [b for b, env in enumerate(self.envs) if agent in env.agents]
            if not live:
                continue
            space = self._actions[agent]
            if isinstance(space, spaces.Box):
                if self.fixed_policy is None:
                    box = self.rng.uniform(space.low, space.high, size=(len(live), *space.shape)).astype(space.dtype)
                else:
                    obs = np.stack([self._raw[b][agent] for b in live])
                    box = np.asarray(self.fixed_policy(agent, obs, self.rng))
                    _check_fixed_box(agent, box, len(live), space)
                for b, a in zip(live, box):
                    out[b][agent] = a
                continue
            if self.fixed_policy is None:
                chosen = self.rng.integers(int(space.n), size=len(live)) + int(space.start)
            else:
                obs = np.stack([self._raw[b][agent] for b in live])
                chosen = np.asarray(self.fixed_policy(agent, obs, self.rng))
                _check_fixed(agent, chosen, len(live), space)
            for b, a in zip(live, chosen):
                out[b][agent] = int(a)
        return out

    def _learner_obs(self) -> np.ndarray:
        if self.image_shape is not None:
            images = np.zeros((self.batch_size, self.num_agents, *self.image_shape), self._obs_dtype)
            for b, raw in enumerate(self._raw):
                for i, agent in enumerate(self.learners):
                    images[b, i] = raw[agent].reshape(self.image_shape)
            return images
        obs = np.zeros((self.batch_size, self.num_agents, self.obs_dim), np.float32)
        for b, raw in enumerate(self._raw):
            for i, agent in enumerate(self.learners):
                o = raw[agent]
                obs[b, i, : o.shape[0]] = o
        return obs


def check_parallel_env(env: object) -> ParallelEnv:
    """``env`` if it is a PettingZoo ParallelEnv, else ``ValueError`` saying what it is."""
    if isinstance(env, AECEnv):
        raise ValueError(
            f"the factory returned an AEC environment ({type(env).__name__}), which takes turns; the adapter "
            "steps a ParallelEnv: convert it with pettingzoo.utils.conversions.aec_to_parallel(env), or name "
            "the module's parallel_env factory"
        )
    needed = ("possible_agents", "reset", "step", "action_space", "observation_space")
    missing = [name for name in needed if not hasattr(env, name)]
    if missing:
        raise ValueError(
            f"the factory returned {type(env).__name__}, not a PettingZoo ParallelEnv (it has no "
            f"{', '.join(missing)})"
        )
    return cast(ParallelEnv, env)  # a ParallelEnv by its interface


def _check_agents(name: str, before: dict, obs: dict, live: list[str], term: dict, trunc: dict) -> None:
    """Agents may leave by terminating or being truncated, never join or vanish."""
    appeared = sorted(set(obs) - set(before))
    if appeared:
        raise ValueError(f"{name}: agents come and go: {appeared} appeared during an episode; the adapter needs "
                         "every agent live from the reset (agents may leave by terminating)")
    vanished = sorted(a for a in set(before) - set(live) if not (term.get(a) or trunc.get(a)))
    if vanished:
        raise ValueError(f"{name}: agents come and go: {vanished} left the episode without being terminated or "
                         "truncated")


def _is_byte_image(space: spaces.Space) -> bool:
    """An integer-valued Box whose values fit in a byte."""
    return (isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.integer)
            and bool(np.all(space.low >= 0)) and bool(np.all(space.high <= 255)))


def _check_learners(learners: list[str], possible: list[str]) -> None:
    if not learners:
        raise ValueError("a PettingZoo game needs at least one learner")
    unknown = [a for a in learners if a not in possible]
    if unknown:
        raise ValueError(f"learners {unknown} are not agents of the env; its agents: {possible}")
    if len(set(learners)) != len(learners):
        raise ValueError(f"learners must be distinct, got {learners}")


def _action_spaces(env: ParallelEnv, agents: list[str]) -> dict[str, spaces.Discrete | spaces.Box]:
    """Every agent's action space: all ``Discrete``, or all ``Box`` of rank 1 with finite bounds."""
    out: dict[str, spaces.Discrete | spaces.Box] = {}
    for agent in agents:
        space = env.action_space(agent)
        if isinstance(space, spaces.Box):
            if len(space.shape) != 1 or not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
                raise ValueError(f"a continuous action space must be a Box of rank 1 with finite bounds; agent "
                                 f"{agent!r} has {space}")
        elif not isinstance(space, spaces.Discrete):
            raise ValueError(f"PettingZoo games need Discrete or Box action spaces; agent {agent!r} has {space}")
        out[agent] = space
    kinds = {type(space).__name__ for space in out.values()}
    if len(kinds) > 1:
        raise ValueError(f"the agents' action spaces mix {' and '.join(sorted(kinds))}; every agent needs a "
                         "Discrete space, or every agent a Box")
    return out


def _box(env: ParallelEnv, agent: str) -> spaces.Box:
    space = env.observation_space(agent)
    if not isinstance(space, spaces.Box):
        raise ValueError(
            f"PettingZoo games need Box observation spaces; agent {agent!r} has {space}"
        )
    return spaces.Box(
        space.low.ravel().astype(np.float32), space.high.ravel().astype(np.float32),
        dtype=np.float32,
    )


def _check_fixed(agent: str, chosen: np.ndarray, k: int, space: spaces.Discrete) -> None:
    if chosen.shape != (k,) or not np.issubdtype(chosen.dtype, np.integer):
        raise ValueError(
            f"fixed_policy must return {k} integer actions for {agent!r}, got "
            f"{chosen.dtype} {chosen.shape}"
        )
    low, high = int(space.start), int(space.start + space.n)
    if chosen.min() < low or chosen.max() >= high:
        raise ValueError(f"fixed_policy's actions for {agent!r} must be in [{low}, {high})")


def _check_fixed_box(agent: str, chosen: np.ndarray, k: int, space: spaces.Box) -> None:
    if chosen.shape != (k, *space.shape) or not np.issubdtype(chosen.dtype, np.floating):
        raise ValueError(f"fixed_policy must return float actions of shape {(k, *space.shape)} for {agent!r}, "
                         f"got {chosen.dtype} {chosen.shape}")
    if not (np.isfinite(chosen).all() and (chosen >= space.low).all() and (chosen <= space.high).all()):
        raise ValueError(f"fixed_policy's actions for {agent!r} must be finite and within {space}")


def _flat(obs: np.ndarray) -> np.ndarray:
    return np.asarray(obs, np.float32).ravel()


class FactoryGame(PettingZooGame):
    """A PettingZoo ``ParallelEnv`` named by its factory (``--env module.path:factory``).

    ``envs`` makes one subclass per factory, with ``factory`` and ``name`` set. Every
    constructor keyword but the adapter's own (``learners``, ``episode_length``,
    ``observation``, ``fixed_policy``) goes to the factory, once per copy. ``learners``
    names the agents that learn (a list, or one comma-separated string; default: every
    possible agent); ``num_agents``, when given, must be their number. The other agents
    play uniformly at random from the game's seeded generator (``fixed_policy`` None).
    ``episode_length`` defaults to the env's own ``max_cycles`` when it has one (the
    PettingZoo convention), else :data:`DEFAULT_EPISODE_LENGTH`. Any exception of the
    factory or of the env while the game is built becomes a ``ValueError`` that names it.
    """

    factory: Callable[..., Any]
    #: steps per episode of an env that has no ``max_cycles``
    DEFAULT_EPISODE_LENGTH = 1000
    #: the keywords the adapter keeps for itself (the rest go to the factory)
    OWN_OPTIONS = ("learners", "episode_length")

    def __init__(
        self,
        num_agents: int | None = None,
        batch_size: int = 1,
        seed: int | None = None,
        *,
        learners: str | Sequence[str] | None = None,
        episode_length: int | None = None,
        observation: str | None = None,
        fixed_policy: FixedPolicy | None = None,
        **options: Any,
    ) -> None:
        made: list[ParallelEnv] = [self._make(options)]  # the first copy, also the probe

        def env_fn() -> ParallelEnv:
            return made.pop() if made else self._make(options)

        probe = made[0]
        names = _names(learners) if learners is not None else list(probe.possible_agents)
        if episode_length is None:
            cycles: Any = getattr(getattr(probe, "unwrapped", probe), "max_cycles", None)
            ok = isinstance(cycles, int) and not isinstance(cycles, bool) and cycles >= 1
            episode_length = int(cycles) if ok else self.DEFAULT_EPISODE_LENGTH
        try:
            super().__init__(env_fn, names, batch_size, episode_length, seed,
                             fixed_policy=fixed_policy, observation=observation)
        except ValueError:
            raise
        except Exception as err:  # the env's own code failed (reset, spaces)
            raise ValueError(f"{self.name}: {type(err).__name__}: {err}") from None
        if num_agents is not None and num_agents != len(names):
            how = "--learners names" if learners is not None else "it has"
            raise ValueError(
                f"{self.name}: {how} {len(names)} learning agents ({', '.join(names)}), not --agents "
                f"{num_agents}: leave out --agents, give --agents {len(names)} or name the learners with --learners"
            )

    def _make(self, options: dict[str, Any]) -> ParallelEnv:
        try:
            env = type(self).factory(**options)
        except Exception as err:
            given = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "no options"
            raise ValueError(f"{self.name}: the factory failed ({given}): {type(err).__name__}: {err}") from None
        try:
            return check_parallel_env(env)
        except ValueError as err:
            raise ValueError(f"{self.name}: {err}") from None

    @classmethod
    def option_names(cls) -> list[str]:
        """The keywords a run may set (``--game-options``): the factory's and the adapter's."""
        import inspect

        try:
            params = list(inspect.signature(cls.factory).parameters.values())
        except (TypeError, ValueError):
            params = []
        taken = {"self", "seed"}
        named = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in taken]
        if any(p.kind == p.VAR_KEYWORD for p in params):
            named.append("... (the factory takes any keyword)")
        return [*named, *cls.OWN_OPTIONS]


def _names(learners: str | Sequence[str]) -> list[str]:
    if isinstance(learners, str):
        return [a.strip() for a in learners.split(",") if a.strip()]
    return list(learners)
