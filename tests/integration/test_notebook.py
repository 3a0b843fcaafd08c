"""The notebooks run headless against the fixture results sets and are committed without outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "analysis.ipynb"
PAPER1_NOTEBOOK = REPO / "notebooks" / "paper1.ipynb"
PAPER2_NOTEBOOK = REPO / "notebooks" / "paper2.ipynb"
FIXTURE = REPO / "tests" / "fixtures" / "results"
PAPER1_FIXTURE = REPO / "tests" / "fixtures" / "paper1"
PAPER2_FIXTURE = REPO / "tests" / "fixtures" / "paper2"


@pytest.mark.parametrize("notebook", [NOTEBOOK, PAPER1_NOTEBOOK, PAPER2_NOTEBOOK], ids=lambda p: p.stem)
def test_notebook_is_committed_with_outputs_stripped(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert not any("fit(" in c.source or "import torch" in c.source for c in code)


def _execute(notebook: Path, results: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list]:
    """Run ``notebook`` on ``results``; return its text output and its outputs (no cell may fail)."""
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("CPT_RESULTS_DIR", str(results))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # jupyter_client runs a "python"/"python3" kernelspec argv with sys.executable, so the
    # kernel is this venv's interpreter even when no kernelspec was registered (fresh CI venv).
    nb = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(REPO / "notebooks")}}
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    return text, outputs


def _images(outputs: list) -> int:
    return len([o for o in outputs if "image/png" in o.get("data", {})])


def test_notebook_executes_against_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    text, outputs = _execute(NOTEBOOK, FIXTURE, monkeypatch)
    assert "skipped" not in text, text[-2000:]
    assert _images(outputs) == 6  # every paper-1 figure displayed
    # Summary: one row per cell; the web-mix cell at η_max 3e-4 without replay has seeds 0 and 1 (old-domain
    # loss 3.25 and 3.28, generate.py), single-seed cells show no spread rather than a fake "± 0".
    summary = next(
        str(o["data"]["text/plain"]) for o in outputs if "gap_avg" in str(o.get("data", {}).get("text/plain", ""))
    )
    assert "3.265 ± 0.021" in summary
    assert "3.500" in summary and "3.500 ±" not in summary  # the strong 0% stage: three runs, one seed
    assert "D_en_news" in summary  # the cell on another corpus is its own row


def test_paper2_notebook_executes_against_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    text, outputs = _execute(PAPER2_NOTEBOOK, PAPER2_FIXTURE, monkeypatch)
    assert _images(outputs) == 2
    runs = pd.read_csv(PAPER2_FIXTURE / "runs.csv")
    # Path switching's cost at version 4 over PTFS's, from the token counts of one seed (accounting "extra").
    ps = runs[(runs["variant"] == "ps-cosine-f20") & (runs["seed"] == 1)]["stage_tokens"].sum()
    ptfs = runs[(runs["variant"] == "ptfs-cosine") & (runs["seed"] == 1)]["stage_tokens"].sum()
    assert f"{ps / ptfs:.1%}" in text
    assert "ps-cosine-f20" in text and " ± " in text and "(n=2)" in text  # seed spread where there are two seeds
    assert "(c) undecayed - (a) decayed" in text  # the CPT findings table, from the pairs present


def test_paper1_notebook_executes_against_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    text, outputs = _execute(PAPER1_NOTEBOOK, PAPER1_FIXTURE, monkeypatch)
    assert _images(outputs) == 9 and "skipped" not in text  # every paper-1 figure
    # The claims table: the re-warm vs constant comparison beside the paper's −0.05 (SlimPajama), two seeds.
    assert "weak: re-warm 1× − constant, new" in text and "-0.05" in text and " ± " in text
    assert "strong: CPT 25% replay − union, avg" in text and "stage_tokens" in text
    assert "split 3: infinite (cosine) release − repeated cosine" in text  # claim 9, one seed of the infinite runs
    assert "cpt_blimp" in text and "neox_d32" in text  # benchmark table; regime axis (two smoke budgets)
    assert "same-rewarm-0.006" in text and "warmup0.02" in text  # the re-warm spike tables
    assert "mix50" in text  # the shift continuum


#: Claims-table lines of a paper README (``row`` in backticks first) and the column holding "ours".
CLAIM_LINE = re.compile(r"^\| `[^`]+` \|")
OURS_COLUMN = {"paper1": 5, "paper2": 3}
NUMBER = re.compile(r"[−+-]?\d+\.\d{3}(?!\d)")


def _plain(text: str) -> str:
    """Signs as the notebook prints them: a minus, no plus."""
    return text.replace("−", "-").replace("+", "")


@pytest.mark.parametrize("paper", ["paper1", "paper2"])
def test_every_readme_claims_number_is_printed_by_its_notebook(paper: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The committed tables, the figures left out (the numbers are in the tables): every 3-decimal number of the
    # claims table's "ours" column must be in the executed notebook's output.
    results = REPO / "results" / "cpu" / paper
    monkeypatch.setenv("CPT_NOTEBOOK_FIGURES", "0")
    text, _ = _execute(REPO / "notebooks" / f"{paper}.ipynb", results, monkeypatch)
    text = _plain(text)
    numbers = []
    for line in (results / "README.md").read_text(encoding="utf-8").splitlines():
        if CLAIM_LINE.match(line):
            ours = line.strip().strip("|").split("|")[OURS_COLUMN[paper]]
            numbers += [_plain(n) for n in NUMBER.findall(ours)]
    assert len(numbers) > 40
    missing = sorted({n for n in numbers if n not in text})
    assert not missing, f"{paper}/README.md claims numbers no notebook cell prints: {missing}"
