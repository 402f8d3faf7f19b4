"""experiments/verdicts.py: the moves of the claims' verdicts between two ledgers."""

from __future__ import annotations

import re

import pytest

from experiments.__main__ import main
from experiments.report import CLAIMS_FILE
from experiments.verdicts import ABSENT, VerdictsError, changed, counts, markdown, moves, parse

HEADER = ("| id | claim | paper | setting | scenario | test | n (of N) | effect [95% CI] | verdict | P(A>B) [95% CI] "
          "| figure | note |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")


def row(claim_id: str, n: int, effect: str, verdict: str, note: str = "") -> str:
    shown = f"**{verdict}** (CI below 0)" if verdict != "inconclusive" else "inconclusive (CI contains 0)"
    return (f"| `{claim_id}` | A beats B | [P Fig. 1](x.md) | paper | s (c) | A − B > 0 | {n} (of 5) | {effect} "
            f"| {shown} | 0.50 [0.1, 0.9] | – | {note} |\n")


OLD = ("# Claims\n\nsome text | with a bar\n\n" + HEADER + row("a", 3, "1 [0.5, 1.5]", "reproduced")
       + row("b", 3, "0.2 [-1, 1.4]", "inconclusive", "equal: \\|A - B\\| <= 1") + row("c", 3, "-2 [-3, -1]", "contradicted")
       + "\n## Why\n\n- `a`: text\n")
NEW = (HEADER + row("a", 3, "1 [0.5, 1.5]", "reproduced") + row("b", 5, "-1.1 [-1.9, -0.3]", "contradicted")
       + row("d", 2, "0.1 [-9, 9]", "inconclusive"))


def test_parse_reads_each_claim_and_its_escaped_bars():
    rows = parse(OLD)
    assert list(rows) == ["a", "b", "c"]
    assert (rows["b"].n, rows["b"].effect, rows["b"].verdict, rows["b"].setting) == ("3", "0.2 [-1, 1.4]",
                                                                                    "inconclusive", "paper")
    assert counts(rows) == {"reproduced": 1, "contradicted": 1, "inconclusive": 1}


def test_moves_and_changes_by_hand():
    old, new = parse(OLD), parse(NEW)
    assert moves(old, new) == {("reproduced", "reproduced"): 1, ("inconclusive", "contradicted"): 1,
                               ("contradicted", ABSENT): 1, (ABSENT, "inconclusive"): 1}
    assert changed(old, new) == ["b", "c", "d"]  # a: same verdict, seeds and effect
    assert changed(old, new, every=True) == ["a", "b", "c", "d"]
    text = markdown(old, new, old_name="old.md", new_name="new.md")
    assert "| `b` | paper | s (c) | 3 | 0.2 [-1, 1.4] | inconclusive | 5 | -1.1 [-1.9, -0.3] | contradicted |" in text
    assert "| `c` | paper | s (c) | 3 | -2 [-3, -1] | contradicted | – | – | absent |" in text
    assert "| inconclusive | 0 | 1 | 0 | 0 |" in text  # the matrix's row: one inconclusive claim became contradicted
    assert "`a`" not in text


def test_a_row_that_does_not_fit_its_table_is_an_error_with_its_line():
    broken = HEADER + row("a", 3, "1 [0.5, 1.5]", "reproduced", note="x | y")
    with pytest.raises(VerdictsError, match=r":3: 13 cells in a table of 12 columns"):
        parse(broken)
    with pytest.raises(VerdictsError, match="verdict"):
        parse(HEADER + row("a", 3, "1", "reproduced").replace("**reproduced**", "maybe"))
    with pytest.raises(VerdictsError, match="also on line 3"):
        parse(HEADER + row("a", 3, "1", "reproduced") * 2)
    with pytest.raises(VerdictsError, match="no claims table"):
        parse("# nothing here\n")


def test_the_ledger_parses_to_the_counts_its_header_states():
    text = CLAIMS_FILE.read_text(encoding="utf-8")
    stated = re.search(r"(\d+) claims: (\d+) reproduced, (\d+) contradicted, (\d+) inconclusive", text)
    assert stated is not None
    rows = parse(text)
    assert len(rows) == int(stated[1])
    assert counts(rows) == {"reproduced": int(stated[2]), "contradicted": int(stated[3]),
                            "inconclusive": int(stated[4])}
    assert changed(rows, rows) == []


def test_command_line(tmp_path, capsys):
    (tmp_path / "old.md").write_text(OLD)
    (tmp_path / "new.md").write_text(NEW)
    assert main(["verdicts", "--old", str(tmp_path / "old.md"), "--new", str(tmp_path / "new.md")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Old: {tmp_path / 'old.md'}, 3 claims: 1 reproduced, 1 contradicted, 1 inconclusive.")
    assert "3 claims whose verdict, seeds or effect changed" in out
    assert main(["verdicts", "--since", "HEAD", "--old", str(tmp_path / "old.md")]) == 2
    assert "one of --since REVISION and --old FILE" in capsys.readouterr().err
    assert main(["verdicts", "--since", "no-such-revision-xyz"]) == 2
    assert "git show no-such-revision-xyz" in capsys.readouterr().err
