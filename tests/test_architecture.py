"""docs/ARCHITECTURE.md stays true to the code.

- Every code reference written `path/to/module.py::Name` or `path/to/module.py::Class.attr`
  (in backticks) resolves: the file exists, ``Name`` is defined at the top level of that
  file (not merely imported into it), and every further dotted name is an attribute (or
  an annotated class attribute) of the one before.
- The doc names every public hook of the loop-strategy contract
  (``strategies/base.py::FederationStrategy``: the methods and class attributes it
  defines whose names do not start with ``_`` and that Flower's ``Strategy`` does not
  define, plus ``configure_train`` and ``aggregate_train``) and of the mediator hook
  (``strategies/mediator.py::Mediator``), so a hook added or removed without the doc fails.
- Every relative link to a file (in ARCHITECTURE.md and in the measurements it moved to
  docs/results/design-measurements.md) resolves, and a ``#fragment`` into a Markdown file
  names one of its headings.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
MEASUREMENTS = ROOT / "docs" / "results" / "design-measurements.md"

#: a backticked span that is meant as a code reference: it contains ``.py::``
TICKED = re.compile(r"`([^`\n]*\.py::[^`\n]*)`")
#: the form such a span must have
REFERENCE = re.compile(r"^((?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_]+\.py)::([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
#: a Markdown link [text](target); images too
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
EXTERNAL = ("http://", "https://", "mailto:")

#: hooks of the contract although Flower's Strategy defines them too
FLOWER_HOOKS = ("configure_train", "aggregate_train")


# ------------------------------------------------------------------ the checker


def references(text: str) -> list[tuple[int, str, str]]:
    """Every `path.py::Name[.attr]` reference of ``text`` as (line, path, dotted name).

    Raises ValueError naming the line of a backticked span with ``.py::`` that does not
    have that form (e.g. a call with parentheses, a space)."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for span in TICKED.findall(line):
            match = REFERENCE.match(span)
            if match is None:
                raise ValueError(f"line {number}: `{span}` is not of the form path/to/module.py::Name[.attr]")
            found.append((number, match.group(1), match.group(2)))
    return found


def top_level_names(file: Path) -> set[str]:
    """The names a module file defines at its top level (functions, classes, assignments,
    also under a top-level ``if``/``try``), not those it imports."""
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(ast.parse(file.read_text(encoding="utf-8"), filename=str(file)).body)
    return names


def _annotated(obj: object, name: str) -> bool:
    """``name`` is an annotated (possibly value-less) attribute of the class ``obj``."""
    if not inspect.isclass(obj):
        return False
    return any(name in inspect.get_annotations(klass) for klass in obj.__mro__)


def resolve(path: str, dotted: str, root: Path) -> None:
    """Raise LookupError unless ``path``'s module defines the first name of ``dotted`` and
    every further name is an attribute of the one before."""
    file = root / path
    if not file.is_file():
        raise LookupError(f"{path}::{dotted}: no file {path}")
    first, *rest = dotted.split(".")
    if first not in top_level_names(file):
        raise LookupError(f"{path}::{dotted}: {path} does not define {first} (imported there, or gone)")
    parts = Path(path).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)  # a package is its __init__.py
    try:
        module = importlib.import_module(name)
    except Exception as err:  # noqa: BLE001 -- any import failure makes the reference unresolvable
        raise LookupError(f"{path}::{dotted}: importing {name} failed: {type(err).__name__}: {err}") from err
    if module.__file__ is None or Path(module.__file__).resolve() != file.resolve():
        raise LookupError(f"{path}::{dotted}: {name} imports from {module.__file__}, not {path}")
    obj: object = getattr(module, first)
    for part in rest:
        if hasattr(obj, part):
            obj = getattr(obj, part)
        elif _annotated(obj, part):
            return  # an annotated attribute without a class-level value: nothing below it to check
        else:
            raise LookupError(f"{path}::{dotted}: {getattr(obj, '__name__', obj)!s} has no attribute {part!r}")


def problems(text: str, root: Path) -> list[str]:
    """One line per reference of ``text`` that does not resolve: ``line N: why``."""
    out = []
    for number, path, dotted in references(text):
        try:
            resolve(path, dotted, root)
        except LookupError as err:
            out.append(f"line {number}: {err}")
    return out


def public_hooks(cls: type, base: type | None = None, also: tuple[str, ...] = ()) -> set[str]:
    """The methods and class attributes ``cls`` itself defines (annotated ones included)
    whose names do not start with ``_`` and that ``base`` does not define, plus ``also``."""
    own = set(vars(cls)) | set(inspect.get_annotations(cls))
    return {n for n in own if not n.startswith("_") and (base is None or not hasattr(base, n))} | set(also)


def unnamed_hooks(text: str, path: str, cls: str, hooks: set[str]) -> list[str]:
    """The hooks the text never names as `path::cls.hook`."""
    named = {dotted.split(".", 1)[1] for _, p, dotted in references(text)
             if p == path and dotted.startswith(cls + ".")}
    return sorted(hooks - named)


def slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading (lower case, punctuation dropped, spaces
    as hyphens)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading's anchor in a Markdown text (repeated headings get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if fenced or not re.match(r"#{1,6} ", line):
            continue
        base = slug(line.lstrip("#"))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(doc: Path) -> list[str]:
    """Relative links of the Markdown file ``doc`` whose file (or heading) does not exist."""
    out = []
    text = doc.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        for target in LINK.findall(line):
            if target.startswith(EXTERNAL):
                continue
            path, _, fragment = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                out.append(f"line {number}: {target}: no file {file}")
            elif fragment and file.suffix == ".md" and fragment not in anchors(file.read_text(encoding="utf-8")):
                out.append(f"line {number}: {target}: {file.name} has no heading with anchor #{fragment}")
    return out


# ------------------------------------------------------------------ the real doc


@pytest.fixture(scope="module")
def text() -> str:
    return DOC.read_text(encoding="utf-8")


def test_every_code_reference_resolves(text):
    assert references(text), "docs/ARCHITECTURE.md names no code as `path.py::Name`"
    found = problems(text, ROOT)
    assert not found, "docs/ARCHITECTURE.md names code that does not exist:\n" + "\n".join(found)


def test_the_measurements_name_only_code_that_exists():
    found = problems(MEASUREMENTS.read_text(encoding="utf-8"), ROOT)
    assert not found, "docs/results/design-measurements.md names code that does not exist:\n" + "\n".join(found)


def test_every_strategy_hook_is_named(text):
    from flwr.serverapp.strategy import Strategy

    from strategies.base import FederationStrategy

    hooks = public_hooks(FederationStrategy, Strategy, FLOWER_HOOKS)
    assert {"instructions", "federated_training", "configure_train"} <= hooks  # the rule sees the class
    missing = unnamed_hooks(text, "strategies/base.py", "FederationStrategy", hooks)
    assert not missing, ("docs/ARCHITECTURE.md does not name these hooks of the loop-strategy contract as "
                         "`strategies/base.py::FederationStrategy.<hook>`: " + ", ".join(missing))


def test_every_mediator_hook_is_named(text):
    from strategies.mediator import Mediator

    hooks = public_hooks(Mediator)
    assert {"act_for", "leaders", "reshape"} <= hooks
    missing = unnamed_hooks(text, "strategies/mediator.py", "Mediator", hooks)
    assert not missing, ("docs/ARCHITECTURE.md does not name these mediator hooks as "
                         "`strategies/mediator.py::Mediator.<hook>`: " + ", ".join(missing))


@pytest.mark.parametrize("doc", [DOC, MEASUREMENTS], ids=lambda p: p.name)
def test_every_relative_link_resolves(doc):
    found = broken_links(doc)
    assert not found, f"{doc.relative_to(ROOT)} has broken links:\n" + "\n".join(found)


def test_architecture_links_to_the_measurements(text):
    assert "results/design-measurements.md" in text


# ------------------------------------------------------------------ the checker itself

FAKE_MODULE = '''
from os.path import join

LIMIT = 3
ROWS: int = 2


def f():
    return 1


class Base:
    def configure_train(self):
        return None


class C(Base):
    kind = "x"
    policy: object

    def m(self):
        return 2

    def _private(self):
        return 3

    def configure_train(self):
        return 4
'''


@pytest.fixture
def fake(tmp_path, monkeypatch) -> Path:
    """A package ``archfake`` with one module, importable from ``tmp_path``."""
    for name in [n for n in sys.modules if n == "archfake" or n.startswith("archfake.")]:
        monkeypatch.delitem(sys.modules, name)  # another test's fake
    package = tmp_path / "archfake"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text(FAKE_MODULE)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## Timing: the round\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_the_checker_accepts_what_the_module_defines(fake):
    doc = ("`archfake/mod.py::f`, `archfake/mod.py::C.m` and `archfake/mod.py::LIMIT`,\n"
           "`archfake/mod.py::ROWS`, `archfake/mod.py::C.policy`, `archfake/mod.py::C.configure_train`.\n"
           "Plain `code` and `f(x)` are no references.")
    assert [r[2] for r in references(doc)] == ["f", "C.m", "LIMIT", "ROWS", "C.policy", "C.configure_train"]
    assert problems(doc, fake) == []


def test_the_checker_reports_what_does_not_resolve(fake):
    doc = "\n".join(["`archfake/mod.py::gone`", "`archfake/mod.py::C.gone`", "`archfake/mod.py::join`",
                     "`archfake/nothere.py::f`"])
    found = problems(doc, fake)
    assert len(found) == 4
    assert found[0].startswith("line 1:") and "does not define gone" in found[0]
    assert "has no attribute 'gone'" in found[1]
    assert "does not define join" in found[2]  # imported, not defined
    assert "no file archfake/nothere.py" in found[3]


def test_the_checker_refuses_malformed_references():
    with pytest.raises(ValueError, match="line 2"):
        references("fine\n`archfake/mod.py::C.m()`")


def test_the_hook_rule_on_a_fake_class(fake):
    from archfake.mod import Base, C

    hooks = public_hooks(C, Base, ("configure_train",))
    assert hooks == {"kind", "policy", "m", "configure_train"}
    doc = "`archfake/mod.py::C.kind` and `archfake/mod.py::C.m`"
    assert unnamed_hooks(doc, "archfake/mod.py", "C", hooks) == ["configure_train", "policy"]


def test_links_and_anchors_on_a_fake_doc(fake):
    doc = fake / "docs" / "ARCH.md"
    doc.write_text("# Title\n\n[ok](other.md), [dir](../archfake/), [head](other.md#timing-the-round),\n"
                   "[self](#title), [web](https://example.org/x.md)\n"
                   "[missing](nothere.md) and [bad anchor](other.md#no-such-heading)\n")
    found = broken_links(doc)
    assert len(found) == 2
    assert found[0].startswith("line 5: nothere.md")
    assert "no heading with anchor #no-such-heading" in found[1]
