"""How the claims' verdicts moved between two versions of docs/results/CLAIMS.md.

    python -m experiments verdicts --since 4dc520a      # that commit's CLAIMS.md against the working tree's
    python -m experiments verdicts --old OLD.md --new NEW.md [--all]

Both files are read as ``python -m experiments report --all`` writes them (one table row per
claim: ``| `id` | claim | paper | setting | scenario | test | n (of N) | effect [95% CI] |
verdict | ...``). Prints, in Markdown: the counts of each verdict in both, the matrix of
moves (old verdict by new; "absent" where a claim is in one file only), and a table of the
claims whose verdict, seeds or effect changed (``--all``: every claim), each with its
setting (``paper``/``authors``), scenario, and old and new seeds, effect [95% CI] and
verdict. Nothing is recomputed: a verdict is what the file of that version says.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from analysis import tables
from experiments.report import CLAIMS_FILE, CONTRADICTED, INCONCLUSIVE, REPRODUCED, ROOT

#: the verdicts, in the order the tables give them; ABSENT: the claim is not in that version
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE)
ABSENT = "absent"
#: the ledger's path in the repository, as git names it
LEDGER = CLAIMS_FILE.relative_to(ROOT).as_posix()
#: the columns read (the claims tables of experiments/report.py have more)
COLUMNS = ("id", "setting", "scenario", "n (of N)", "effect [95% CI]", "verdict")
_SPLIT = re.compile(r"(?<!\\)\|")


class VerdictsError(ValueError):
    """A file that is not a claims ledger as experiments/report.py writes it."""


@dataclass(frozen=True)
class Row:
    """One claim as one version of the ledger states it."""

    id: str
    setting: str
    scenario: str
    n: str
    effect: str
    verdict: str  # one of VERDICTS

    def key(self) -> tuple[str, str, str]:
        """What a move is: the verdict, the seeds and the effect."""
        return self.verdict, self.n, self.effect


def _cells(line: str) -> list[str]:
    return [c.strip() for c in _SPLIT.split(line.strip())[1:-1]]


def parse(text: str, source: str = "CLAIMS.md") -> dict[str, Row]:
    """Every claim row of ``text`` by id; a row whose cells do not match its table's header,
    an unknown verdict or an id given twice is an error naming the line."""
    rows: dict[str, Row] = {}
    where: dict[str, int] = {}
    header: list[str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if cells and cells[0] == "id":
            missing = [c for c in COLUMNS if c not in cells]
            header = cells if not missing else None
            continue
        if header is None or not cells or not cells[0].startswith("`"):
            continue
        if len(cells) != len(header):
            raise VerdictsError(f"{source}:{number}: {len(cells)} cells in a table of {len(header)} columns "
                                f"(an unescaped '|' in a cell?)")
        get = dict(zip(header, cells))
        claim_id = get["id"].strip("`")
        verdict = get["verdict"].replace("*", "").split(" ", 1)[0]
        if verdict not in VERDICTS:
            raise VerdictsError(f"{source}:{number}: claim {claim_id!r}: verdict {get['verdict']!r} is none of "
                                f"{', '.join(VERDICTS)}")
        if claim_id in rows:
            raise VerdictsError(f"{source}:{number}: claim {claim_id!r} is also on line {where[claim_id]}")
        n = get["n (of N)"].split(" ", 1)[0]
        rows[claim_id] = Row(claim_id, get["setting"], get["scenario"], n, get["effect [95% CI]"], verdict)
        where[claim_id] = number
    if not rows:
        raise VerdictsError(f"{source}: no claims table (a header row '| id | ... | verdict | ...')")
    return rows


def counts(rows: Mapping[str, Row]) -> dict[str, int]:
    return {v: sum(r.verdict == v for r in rows.values()) for v in VERDICTS}


def moves(old: Mapping[str, Row], new: Mapping[str, Row]) -> dict[tuple[str, str], int]:
    """(old verdict, new verdict) -> number of claims, ABSENT for a claim in one version only."""
    out: dict[tuple[str, str], int] = {}
    for claim_id in [*old, *(k for k in new if k not in old)]:
        pair = (old[claim_id].verdict if claim_id in old else ABSENT,
                new[claim_id].verdict if claim_id in new else ABSENT)
        out[pair] = out.get(pair, 0) + 1
    return out


def changed(old: Mapping[str, Row], new: Mapping[str, Row], every: bool = False) -> list[str]:
    """The ids whose verdict, seeds or effect differ (``every``: all ids), old order first."""
    ids = [*old, *(k for k in new if k not in old)]
    if every:
        return ids
    return [k for k in ids if (old[k].key() if k in old else None) != (new[k].key() if k in new else None)]


def markdown(old: Mapping[str, Row], new: Mapping[str, Row], *, old_name: str, new_name: str,
             every: bool = False) -> str:
    """The counts, the matrix of moves and the table of changed claims, in Markdown."""
    c_old, c_new = counts(old), counts(new)
    lines = [f"Old: {old_name}, {len(old)} claims: " + ", ".join(f"{n} {v}" for v, n in c_old.items()) + ".",
             f"New: {new_name}, {len(new)} claims: " + ", ".join(f"{n} {v}" for v, n in c_new.items()) + ".", ""]
    m = moves(old, new)
    states = (*VERDICTS, ABSENT)
    lines += [tables.markdown(["old \\ new", *states],
                              [[o, *(str(m.get((o, n), 0)) for n in states)] for o in states]), ""]
    ids = changed(old, new, every)
    lines.append(f"{len(ids)} claim{'s' if len(ids) != 1 else ''} "
                 + ("in all:" if every else "whose verdict, seeds or effect changed:"))
    lines.append("")

    def side(row: Row | None) -> list[str]:
        return [row.n, row.effect, row.verdict] if row is not None else ["–", "–", ABSENT]

    body = []
    for k in ids:
        o, n = old.get(k), new.get(k)
        ref = n or o
        assert ref is not None
        body.append([f"`{k}`", ref.setting, ref.scenario, *side(o), *side(n)])
    lines.append(tables.markdown(["id", "setting", "scenario", "old n", "old effect [95% CI]", "old verdict",
                                  "new n", "new effect [95% CI]", "new verdict"], body))
    return "\n".join(lines) + "\n"


def at_revision(revision: str, path: str = LEDGER) -> str:
    """The text of ``path`` at git ``revision`` of this repository; a clear error when git cannot give it."""
    try:
        done = subprocess.run(["git", "show", f"{revision}:{path}"], capture_output=True, text=True, cwd=ROOT,
                              check=False)
    except FileNotFoundError as err:
        raise VerdictsError("git is not installed: give --old FILE instead of --since") from err
    if done.returncode != 0:
        raise VerdictsError(f"git show {revision}:{path}: {done.stderr.strip() or 'failed'}")
    return done.stdout


__all__ = ("ABSENT", "LEDGER", "VERDICTS", "Row", "VerdictsError", "at_revision", "changed", "counts", "markdown",
           "moves", "parse")
