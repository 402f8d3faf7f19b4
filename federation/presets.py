"""Presets: named, documented sets of flag values, one TOML file each in federation/presets/.

A preset file holds a one-line ``description``, where its values come from (``source``)
and a ``[values]`` table of flat keys (the flags in kebab- or snake-case)::

    description = "FPF's SSD runs: 3 DQN agents on Harvest, 100 rounds"
    source = "experiments/campaigns/fpf-ssd-3.toml (the committed docs/results/ssd runs)"
    [values]
    env = "harvest"
    learner = "dqn"

``run_sim.py --preset NAME`` starts from those values; flags given on the command line win.
``--preset`` also takes the path of a TOML file of one's own. ``--list-presets`` lists them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from clients.settings import ConfigError

DIRECTORY = Path(__file__).resolve().parent / "presets"


def available() -> dict[str, str]:
    """Every shipped preset's name -> its description."""
    return {path.stem: _read(path)["description"] for path in sorted(DIRECTORY.glob("*.toml"))}


def path_of(name: str) -> Path:
    """The file of the preset ``name`` (a shipped name, or the path of a TOML file)."""
    shipped = DIRECTORY / f"{name}.toml"
    if shipped.is_file():
        return shipped
    if name.endswith(".toml") and Path(name).is_file():
        return Path(name)
    raise ConfigError(f"--preset: unknown preset {name!r}; shipped presets: {', '.join(available())} "
                      "(or give the path of a .toml file)")


def load(name: str) -> dict[str, Any]:
    """The flat values of the preset ``name``, keys in snake_case."""
    data = _read(path_of(name))
    return {key.replace("-", "_"): value for key, value in data["values"].items()}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"--preset: {path} is not valid TOML: {err}") from None
    if not isinstance(data.get("description"), str) or not isinstance(data.get("values"), dict):
        raise ConfigError(f"--preset: {path} needs a 'description' line and a [values] table")
    for key, value in data["values"].items():
        if isinstance(value, (dict, list)):
            raise ConfigError(f"--preset: {path}: {key} must be a single value, got {value!r}")
    return data


def describe() -> str:
    """The shipped presets, one per line, for ``--list-presets``."""
    lines = []
    for name, description in available().items():
        data = _read(DIRECTORY / f"{name}.toml")
        lines.append(f"{name}\n    {description}")
        if data.get("source"):
            lines.append(f"    source: {data['source']}")
        values = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in data["values"].items())
        lines.append(f"    flags: {values}")
    return "\n".join(lines)
