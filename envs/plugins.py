"""User code by name: installed entry points and import paths ``module.path:Name``.

The three registries (games: envs/__init__.py, learners: clients/learners.py,
strategies: strategies/__init__.py) look a name up in this order: their built-in names,
then the names installed packages register under the entry-point groups below (a
package's ``[project.entry-points."fedgames.strategies"]`` table, read with
``importlib.metadata``), then, for a name with a colon, ``module.path:Name`` imported
as Python would (``Name`` may be dotted: ``module:Class.factory``). A built-in name wins
over an entry point of the same name. Anything that goes wrong while finding the object
(no such module, an exception while importing it, no such attribute) raises
:class:`PluginError`, a ``ValueError`` whose message names the problem; each registry
then checks the object against its own contract.

The names are plain strings, so they travel in a run's configuration: in a Flower
deployment the ServerApp and every ClientApp resolve them where they run (the user's
module must be importable there: installed, or part of the app's directory).
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import TypeVar

T = TypeVar("T")

GAMES = "fedgames.games"
STRATEGIES = "fedgames.strategies"
LEARNERS = "fedgames.learners"


class PluginError(ValueError):
    """A plug-in could not be loaded or does not fit its contract; the message says why."""


def is_import_path(name: str) -> bool:
    """Whether ``name`` reads ``module.path:Name``."""
    return ":" in name


def installed(group: str) -> dict[str, metadata.EntryPoint]:
    """The entry points of ``group`` installed packages register, by name. Read once per
    search path (``sys.path``): scanning every installed package costs ~20 ms, and a
    configuration checks its names against the registries every time one is built."""
    return dict(_installed(group, tuple(sys.path)))


@functools.lru_cache(maxsize=32)
def _installed(group: str, path: tuple[str, ...]) -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def lookup(name: str, registry: Mapping[str, T], group: str, what: str, check: Callable[[object, str], T],
           unknown: Callable[[], str]) -> T:
    """``registry[name]`` for a built-in name, else the plug-in ``name`` (entry point of
    ``group`` or import path, found once per process) that ``check(obj, "WHAT NAME")``
    accepts; ValueError with the message ``unknown()`` when ``name`` is neither."""
    if name in registry:
        return registry[name]
    found = _checked(name, group, what, check)
    if found is None:
        raise ValueError(unknown())
    return found


@functools.cache
def _checked(name: str, group: str, what: str, check: Callable[[object, str], T]) -> T | None:
    obj = find(name, group, what)
    return None if obj is None else check(obj, f"{what} {name}")


def find(name: str, group: str, what: str) -> object | None:
    """The object the entry point ``name`` of ``group`` or the import path ``name``
    names; None when ``name`` is neither (the caller reports an unknown name).
    ``what`` names the thing in messages (e.g. ``"--strategy"``)."""
    entry = installed(group).get(name)
    if entry is not None:
        return resolve(entry.value, f"{what} {name} (entry point {entry.value!r} of {group})")
    if is_import_path(name):
        return resolve(name, f"{what} {name}")
    return None


def resolve(path: str, what: str) -> object:
    """Import ``module.path:Name`` and return the object; ``what`` names it in messages."""
    module_name, _, attr = path.partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    if not module_name or not attr:
        raise PluginError(f"{what}: an import path reads module.path:Name, got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            raise PluginError(f"{what}: cannot import module {module_name!r}: {err} (is it installed, or on "
                              "PYTHONPATH?)") from None
        raise PluginError(f"{what}: importing {module_name!r} failed: {type(err).__name__}: {err}") from None
    except Exception as err:  # the user's module raised while being imported
        raise PluginError(f"{what}: importing {module_name!r} failed: {type(err).__name__}: {err}") from None
    obj: object = module
    for i, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            where = module_name if i == 0 else f"{module_name}:{'.'.join(attr.split('.')[:i])}"
            public = sorted(n for n in dir(obj) if not n.startswith("_"))
            hint = f"; it has: {', '.join(public[:20])}{', ...' if len(public) > 20 else ''}" if public else ""
            raise PluginError(f"{what}: {where!r} has no attribute {part!r}{hint}")
        obj = getattr(obj, part)
    return obj


def missing_overrides(cls: type, base: type, names: tuple[str, ...]) -> list[str]:
    """The methods of ``names`` that ``cls`` inherits from ``base`` unchanged."""
    def defines(name: str) -> bool:
        return any(name in vars(k) for k in cls.__mro__ if k is not base and k is not object
                   and issubclass(k, base))
    return [n for n in names if not defines(n)]
