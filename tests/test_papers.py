"""docs/PAPERS.md stays true: every table row's code reference imports and every test
reference names a test that exists; and no file cites a paper by a seed number or
appeals to "the spec" instead of citing the paper (docs/PAPERS.md, citation style)."""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ROOT / "docs" / "PAPERS.md"
HEADER = ["paper ref", "what", "code", "test"]
UNTESTED = "—"
TICKED = re.compile(r"`([^`]+)`")
TAGS = {"FPF", "Pareto", "MD", "JAM-QL"}

# where citations by seed number or appeals to the spec are not allowed
SOURCE_DIRS = ("clients", "envs", "strategies", "federation", "experiments", "tools", "benchmarks")
FORBIDDEN = re.compile(r"seed 00\d|the spec", re.IGNORECASE)


@dataclass(frozen=True)
class Row:
    section: str  # the paper's tag, from the "## TAG: title" heading above the table
    line: int
    ref: str
    what: str
    code: tuple[str, ...]
    tests: tuple[str, ...]  # empty: the row says the item is untested


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse(text: str) -> list[Row]:
    """The rows of every table whose header is ``| paper ref | what | code | test |``.

    Raises ValueError naming the line of a malformed row."""
    rows: list[Row] = []
    section, columns = "", None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            section = line[3:].split(":")[0].strip()
        if not line.lstrip().startswith("|"):
            columns = None  # a table ends at the first line that is not a row
            continue
        cells = _cells(line)
        if columns is None:
            columns = cells
            continue
        if columns != HEADER or all(set(c) <= set("-: ") for c in cells):
            continue  # another table, or the separator row
        if len(cells) != len(HEADER):
            raise ValueError(f"line {number}: {len(cells)} cells, not {len(HEADER)} (a '|' inside a cell?)")
        ref, what, code, test = cells
        code_refs = tuple(TICKED.findall(code))
        test_refs = () if test == UNTESTED else tuple(TICKED.findall(test))
        if not ref or not what:
            raise ValueError(f"line {number}: empty 'paper ref' or 'what'")
        for column, text_, refs in (("code", code, code_refs), ("test", test, test_refs)):
            if text_ != UNTESTED or column == "code":
                if not refs or TICKED.sub("", text_).strip(" ,"):
                    raise ValueError(f"line {number}: the {column} column must hold `references` "
                                     f"separated by commas{' or ' + UNTESTED if column == 'test' else ''}, "
                                     f"got {text_!r}")
        rows.append(Row(section, number, ref, what, code_refs, test_refs))
    return rows


def resolve_code(ref: str, root: Path) -> object:
    """``path/to/module.py::name`` or ``::Class.method``: import the module of that file and
    get the attribute; the first name must be defined in that module, not imported into it.
    Raises LookupError saying what is missing."""
    path, sep, attrs = ref.partition("::")
    if not sep or not path.endswith(".py") or not attrs:
        raise LookupError(f"{ref}: write path/to/module.py::function or ::Class.method")
    file = root / path
    if not file.is_file():
        raise LookupError(f"{ref}: no file {path}")
    name = ".".join(Path(path).with_suffix("").parts)
    try:
        module = importlib.import_module(name)
    except Exception as err:  # noqa: BLE001 -- any import failure makes the reference unresolvable
        raise LookupError(f"{ref}: importing {name} failed: {type(err).__name__}: {err}") from err
    if Path(module.__file__).resolve() != file.resolve():
        raise LookupError(f"{ref}: {name} imports from {module.__file__}, not {path}")
    obj: object = module
    for depth, part in enumerate(attrs.split(".")):
        if not hasattr(obj, part):
            raise LookupError(f"{ref}: {getattr(obj, '__name__', obj)!s} has no attribute {part!r}")
        obj = getattr(obj, part)
        home = getattr(obj, "__module__", name)
        if depth == 0 and home != name:
            raise LookupError(f"{ref}: {part} is imported into {name} from {home}; cite where it is defined")
    return obj


@lru_cache(maxsize=None)
def _tree(file: Path, stamp: float) -> ast.Module:
    return ast.parse(file.read_text(encoding="utf-8"), filename=str(file))


def resolve_test(ref: str, root: Path) -> None:
    """``tests/test_x.py::test_name`` (or ``::TestClass::test_name``) must be defined in that
    file; parametrized tests are named without brackets. Raises LookupError."""
    path, sep, name = ref.partition("::")
    if not sep or not path.endswith(".py") or not name:
        raise LookupError(f"{ref}: write tests/test_x.py::test_name")
    if "[" in name or "]" in name:
        raise LookupError(f"{ref}: name parametrized tests without brackets")
    file = root / path
    if not file.is_file():
        raise LookupError(f"{ref}: no file {path}")
    *classes, function = name.split("::")
    body = _tree(file, file.stat().st_mtime).body
    for cls in classes:
        found = [n for n in body if isinstance(n, ast.ClassDef) and n.name == cls]
        if not found:
            raise LookupError(f"{ref}: {path} defines no class {cls}")
        body = found[0].body
    defined = {n.name for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if not function.startswith("test") or function not in defined:
        raise LookupError(f"{ref}: {path} defines no test function {function}")


def problems(rows: list[Row], root: Path) -> list[str]:
    """One line per unresolvable reference: ``line N: why``."""
    out = []
    for row in rows:
        for ref in row.code:
            try:
                resolve_code(ref, root)
            except LookupError as err:
                out.append(f"line {row.line}: {err}")
        for ref in row.tests:
            try:
                resolve_test(ref, root)
            except LookupError as err:
                out.append(f"line {row.line}: {err}")
    return out


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return parse(PAPERS.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ the real table


def test_every_paper_has_a_table_and_rows_cite_their_own_paper(rows):
    assert {r.section for r in rows} == TAGS
    wrong = [f"line {r.line}: '{r.ref}' under {r.section}" for r in rows if not r.ref.startswith(r.section)]
    assert not wrong, "rows whose paper ref does not start with their paper's tag:\n" + "\n".join(wrong)


def test_every_code_and_test_reference_resolves(rows):
    found = problems(rows, ROOT)
    assert not found, "docs/PAPERS.md names code or tests that do not exist:\n" + "\n".join(found)


def test_untested_rows_are_few(rows):
    untested = [r for r in rows if not r.tests]
    assert len(untested) <= len(rows) // 5, [f"line {r.line}: {r.ref}" for r in untested]


# ------------------------------------------------------------------ the checker itself

FAKE_MODULE = '''
from os.path import join


def f():
    return 1


class C:
    def m(self):
        return 2
'''

FAKE_TESTS = '''
import pytest


def test_ok():
    pass


@pytest.mark.parametrize("x", [1, 2])
def test_param(x):
    pass


def helper():
    pass


class TestGroup:
    def test_inside(self):
        pass
'''


def fake_table(lines: list[str]) -> str:
    head = ["# Papers", "", "## FPF: a paper", "", "| paper ref | what | code | test |", "|---|---|---|---|"]
    return "\n".join(head + lines + ["", "Not implemented: nothing."]) + "\n"


def test_the_checker_on_a_fake_table(tmp_path, monkeypatch):
    package = tmp_path / "papers_fake_pkg"
    package.mkdir()
    (package / "mod.py").write_text(FAKE_MODULE)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_fake.py").write_text(FAKE_TESTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()

    good = [
        "| FPF Eq. 1 | a function | `papers_fake_pkg/mod.py::f` | `tests/test_fake.py::test_ok` |",
        "| FPF Eq. 2 | a method, two tests | `papers_fake_pkg/mod.py::C.m` | "
        "`tests/test_fake.py::test_param`, `tests/test_fake.py::TestGroup::test_inside` |",
        "| FPF Eq. 3 | a class, untested | `papers_fake_pkg/mod.py::C` | — |",
    ]
    bad = {
        "| FPF Eq. 4 | missing function | `papers_fake_pkg/mod.py::g` | `tests/test_fake.py::test_ok` |":
            "has no attribute 'g'",
        "| FPF Eq. 5 | missing method | `papers_fake_pkg/mod.py::C.n` | `tests/test_fake.py::test_ok` |":
            "has no attribute 'n'",
        "| FPF Eq. 6 | missing module | `papers_fake_pkg/nope.py::f` | `tests/test_fake.py::test_ok` |":
            "no file papers_fake_pkg/nope.py",
        "| FPF Eq. 7 | imported, not defined | `papers_fake_pkg/mod.py::join` | `tests/test_fake.py::test_ok` |":
            "cite where it is defined",
        "| FPF Eq. 8 | missing test | `papers_fake_pkg/mod.py::f` | `tests/test_fake.py::test_missing` |":
            "defines no test function test_missing",
        "| FPF Eq. 9 | not a test | `papers_fake_pkg/mod.py::f` | `tests/test_fake.py::helper` |":
            "defines no test function helper",
        "| FPF Eq. 10 | missing test file | `papers_fake_pkg/mod.py::f` | `tests/test_gone.py::test_ok` |":
            "no file tests/test_gone.py",
        "| FPF Eq. 11 | brackets | `papers_fake_pkg/mod.py::f` | `tests/test_fake.py::test_param[1]` |":
            "without brackets",
        "| FPF Eq. 12 | missing class | `papers_fake_pkg/mod.py::f` | `tests/test_fake.py::TestNone::test_inside` |":
            "defines no class TestNone",
    }
    rows = parse(fake_table(good + list(bad)))
    assert [r.ref for r in rows] == [f"FPF Eq. {k}" for k in range(1, 13)]
    assert rows[1].tests == ("tests/test_fake.py::test_param", "tests/test_fake.py::TestGroup::test_inside")
    assert rows[2].tests == () and rows[0].section == "FPF"
    assert problems(rows[:3], tmp_path) == []
    found = problems(rows, tmp_path)
    assert len(found) == len(bad)
    for (line, why), message in zip(bad.items(), found):
        assert why in message, (line, message)
    # the lines reported are those of the bad rows
    assert [m.split(":")[0] for m in found] == [f"line {7 + len(good) + k}" for k in range(len(bad))]

    # malformed rows are refused with their line
    with pytest.raises(ValueError, match=r"line 7: 6 cells, not 4"):
        parse(fake_table(["| FPF Eq. 1 | ‖θ‖ written |θ| | `papers_fake_pkg/mod.py::f` | — |"]))
    with pytest.raises(ValueError, match="line 7: the code column"):
        parse(fake_table(["| FPF Eq. 1 | no backticks | papers_fake_pkg/mod.py::f | — |"]))
    with pytest.raises(ValueError, match="line 7: the test column"):
        parse(fake_table(["| FPF Eq. 1 | test missing | `papers_fake_pkg/mod.py::f` | |"]))
    # tables with other headers are not read
    assert parse("| tag | paper |\n|---|---|\n| FPF | x |\n") == []


# ------------------------------------------------------------------ citations


def cited_files(root: Path) -> list[Path]:
    files = [p for d in SOURCE_DIRS for p in sorted((root / d).rglob("*.py"))]
    return files + [root / "run_sim.py", root / "README.md", *sorted((root / "docs").glob("*.md"))]


def test_the_citation_pattern():
    for text in ("see seed 003", "Seed 004's Eq. 3", "the spec says", "The specification defines"):
        assert FORBIDDEN.search(text), text
    for text in ("[MD Eq. 15]", "seed 0", "seeds 1 and 2", "the acting spec it reported", "seed=003"):
        assert not FORBIDDEN.search(text), text


def test_no_seed_numbers_or_appeals_to_the_spec():
    hits = []
    for path in cited_files(ROOT):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, ("cite papers by their tag ([MD Eq. 15], docs/PAPERS.md) and state decisions plainly, "
                      "not 'seed 00N' or 'the spec':\n" + "\n".join(hits))
