"""Settings groups: dataclasses whose fields carry their flag, help text and valid range.

Each concern of a run (the world, a learner, a strategy family, attacks, execution) is one
dataclass subclassing :class:`Settings`, defined in the module that owns the concept
(``DQNConfig`` in clients/dqn.py, ``FPFConfig`` in strategies/fpf.py, ...). A field is made
with :func:`setting`, which records its help sentence and its range; ``validate()`` checks
every field against its range (and that floats are finite), then the group's own
``check()`` for constraints between fields. The command line and ``[tool.flwr.app.config]``
name a field ``<prefix>-<field>`` (the group's ``prefix``; a field may give its own
``flag``), so names inside a group carry no redundant prefix: ``DQNConfig.lr`` is
``--dqn-lr``. The run configuration (federation/config.py) assembles the groups.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

#: the largest integer any count may take (a tensor dimension, a seed, a buffer size)
INT_MAX = 2**31 - 1


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the flag and the valid choices."""


def setting(default: Any, help: str, *, flag: str | None = None, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None,
            choices: Iterable[str] | Callable[[], Iterable[str]] | None = None,
            aliases: tuple[str, ...] = (), import_path: bool = False) -> Any:
    """A settings field: its default, one sentence of help, its flag (``None``: the group's
    prefix and the field's name), its range (``ge``/``gt``/``le``/``lt``), the valid
    ``choices`` (a tuple, or a function returning them, for registries), old flag
    spellings kept as deprecated ``aliases``, and whether a ``module.path:Name`` outside
    the choices is also valid (``import_path``: a registry resolves it, envs/plugins.py)."""
    return dataclasses.field(default=default, metadata={"help": help, "flag": flag, "ge": ge, "gt": gt, "le": le,
                                                         "lt": lt, "choices": choices, "aliases": aliases,
                                                         "import_path": import_path})


def flag_of(cls: type, f: dataclasses.Field) -> str:
    """The kebab-case flag of field ``f`` of the settings class ``cls`` (no dashes in front)."""
    if f.metadata.get("flag"):
        return f.metadata["flag"]
    name = f.name.rstrip("_").replace("_", "-")
    prefix = getattr(cls, "prefix", "")
    return f"{prefix}-{name}" if prefix else name


def choices_of(f: dataclasses.Field) -> tuple[str, ...] | None:
    choices = f.metadata.get("choices")
    if choices is None:
        return None
    return tuple(choices() if callable(choices) else choices)


def range_text(f: dataclasses.Field) -> str:
    """The valid range of a numeric field in interval notation, e.g. ``(0, 1]``; '' if none."""
    m = f.metadata
    lo = f"[{_num(m['ge'])}" if m.get("ge") is not None else (f"({_num(m['gt'])}" if m.get("gt") is not None else "")
    hi = f"{_num(m['le'])}]" if m.get("le") is not None else (f"{_num(m['lt'])})" if m.get("lt") is not None else "")
    if not lo and not hi:
        return ""
    return f"{lo or '(-inf'}, {hi or 'inf)'}"


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


class Settings:
    """Base of every settings group: ``validate()`` checks the fields' ranges, then ``check()``."""

    #: flag prefix of the group's fields ('' for none)
    prefix: ClassVar[str] = ""
    #: the group's title in ``--help``
    title: ClassVar[str] = ""
    #: every subclass is a dataclass (declared for the type checker: dataclasses.fields takes one)
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def validate(self) -> None:
        """Raise ConfigError naming the first field outside its range, then run ``check()``."""
        for f in dataclasses.fields(self):
            check_value(flag_of(type(self), f), getattr(self, f.name), f)
        self.check()

    def check(self) -> None:
        """Constraints between fields (raise ConfigError); none by default."""


def check_value(flag: str, value: Any, f: dataclasses.Field) -> None:
    """Raise ConfigError if ``value`` is not a valid value of field ``f`` (flag ``--flag``)."""
    m = f.metadata
    choices = choices_of(f)
    if choices is not None and value not in choices and not (m.get("import_path") and ":" in str(value)):
        more = ", or an import path module.path:Name" if m.get("import_path") else ""
        raise ConfigError(f"--{flag}: unknown value {value!r}; valid choices: {', '.join(choices)}{more}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"--{flag} must be a finite number, got {value}")
    if isinstance(value, int) and abs(value) > INT_MAX:
        raise ConfigError(f"--{flag} must be at most {INT_MAX}, got {value}")
    ok = ((m.get("ge") is None or value >= m["ge"]) and (m.get("gt") is None or value > m["gt"])
          and (m.get("le") is None or value <= m["le"]) and (m.get("lt") is None or value < m["lt"]))
    if not ok:
        raise ConfigError(f"--{flag} must be in {range_text(f)}, got {value:g}")
