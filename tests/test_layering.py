"""Imports run one way: games <- agents <- strategies <- server <- run_sim.py."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "analysis": {"torch", "flwr", "envs", "clients", "strategies", "federation", "experiments"},  # pure data
    "envs": {"torch", "flwr", "clients", "strategies", "federation"},
    "clients": {"strategies", "federation"},
    "strategies": {"federation"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_module_imports_a_layer_above_it(layer):
    modules = sorted((ROOT / layer).rglob("*.py"))
    assert modules
    offenders = {str(m.relative_to(ROOT)): sorted(imported_packages(m) & FORBIDDEN[layer]) for m in modules}
    assert {m: bad for m, bad in offenders.items() if bad} == {}


def test_the_checker_sees_function_level_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from federation.config import RunConfig\n    import torch.nn\n")
    assert imported_packages(module) == {"federation", "torch"}
