"""The verdicts in the committed papers' READMEs are the rule's output on the committed tables.

Each claims-table line of results/cpu/paper{1,2}/README.md starts with its ``row`` (the group of comparisons,
in backticks) and puts the verdict first in bold in its last cell; the rule (``verdicts``) recomputed from the
tables beside the README must give exactly that text, and every group the tables produce must have a line. So
when rows are added to runs.csv (more seeds, more strategies), this test says which README verdicts changed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cpt_experiments.results import claims, verdicts, version_claims

REPO = Path(__file__).resolve().parents[2]
PAPERS = {"paper1": claims.claims_table, "paper2": version_claims.claims_table}
LINE = re.compile(r"^\| `([^`]+)` \|.*\| \*\*([^*]+)\*\*[^|]*\|\s*$")


def readme_verdicts(readme: Path) -> dict[str, str]:
    """``row`` -> the bold verdict of every claims-table line of ``readme``."""
    out = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        m = LINE.match(line)
        if m:
            assert m.group(1) not in out, f"{readme}: row {m.group(1)!r} twice"
            out[m.group(1)] = m.group(2).strip()
    return out


def test_the_readme_parser_reads_the_last_cell_only() -> None:
    line = "| `s-x` | 1 | says **bold** here | +0.1 | **holds (a); not resolved (b)**: because |"
    assert LINE.match(line).groups() == ("s-x", "holds (a); not resolved (b)")


@pytest.mark.parametrize("paper", sorted(PAPERS))
def test_readme_verdicts_are_the_rule_on_the_committed_tables(paper: str) -> None:
    results = REPO / "results" / "cpu" / paper
    ours = verdicts.by_group(PAPERS[paper](results)).set_index("group")["verdict"]
    written = readme_verdicts(results / "README.md")
    missing = sorted(set(ours.index) - set(written))
    assert not missing, f"{paper}/README.md has no claims line for row(s) {missing}"
    unknown = sorted(set(written) - set(ours.index))
    assert not unknown, f"{paper}/README.md: row(s) {unknown} are not produced from the tables"
    wrong = {g: (written[g], ours[g]) for g in ours.index if written[g] != ours[g]}
    assert not wrong, f"{paper}/README.md verdicts (written, rule): {wrong}"
