"""Every figure renders from the fixture results set; missing data raises a named error; the CLI reports skips."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from cpt_experiments.figures import FIGURES, MissingFigureData, style
from cpt_experiments.figures.__main__ import main
from cpt_experiments.results import store

FIXTURE = Path(__file__).parents[1] / "fixtures" / "results"


@pytest.fixture(scope="module", autouse=True)
def _agg() -> None:
    style.use_agg()


def _copy_fixture(tmp_path: Path, drop_roles: tuple[str, ...] = (), drop_tables: tuple[str, ...] = ()) -> Path:
    out = tmp_path / "results"
    out.mkdir()
    for table in store.TABLES:
        if table in drop_tables:
            continue
        df = store.load(FIXTURE, table)
        if drop_roles and table == "runs":
            df = df[~df["role"].isin(drop_roles)]
        store.append(out, table, df)
    return out


@pytest.mark.parametrize("name", FIGURES)
def test_figure_renders_from_fixture(name: str, tmp_path: Path) -> None:
    fig = importlib.import_module(f"cpt_experiments.figures.{name}").make(FIXTURE)
    axes = [ax for ax in fig.axes if ax.has_data()]
    assert axes, f"{name}: no axes with data"
    assert all(ax.get_xlabel() or ax.get_title() for ax in axes)
    (png,) = style.save(fig, tmp_path, name, ["png"])
    assert png.stat().st_size > 5000


def test_figures_import_no_torch() -> None:
    for name in FIGURES:
        importlib.import_module(f"cpt_experiments.figures.{name}")
    if "torch" not in sys.modules:  # other tests in the session may have imported it
        assert "lightning" not in sys.modules


@pytest.mark.parametrize(
    ("name", "drop_roles", "drop_tables", "match"),
    [
        ("union_baseline", ("union",), (), r"union_baseline: no stages with role 'union'"),
        ("path_switching", ("ptfs",), (), r"path_switching: .*role ptfs"),
        ("infinite_schedules", (), ("curves",), r"infinite_schedules: needs curves\.csv: .*curves\.csv"),
        ("benchmarks", (), ("evals",), r"benchmarks: needs evals\.csv"),
        ("loss_curves", ("continual",), (), r"loss_curves: no runs with role 'continual'"),
        ("rewarm_sweep", ("continual",), (), r"rewarm_sweep: no replay-free continual stages"),
        ("replay_sweep", ("continual",), (), r"replay_sweep: no continual stages"),
    ],
)  # fmt: skip
def test_missing_data_raises_named_error(tmp_path: Path, name, drop_roles, drop_tables, match) -> None:
    results_dir = _copy_fixture(tmp_path, drop_roles, drop_tables)
    with pytest.raises(MissingFigureData, match=match) as info:
        importlib.import_module(f"cpt_experiments.figures.{name}").make(results_dir)
    assert "\n" not in str(info.value)


def test_replay_sweep_needs_two_ratios(tmp_path: Path) -> None:
    results_dir = tmp_path / "r"
    for table in store.TABLES:
        shutil.copy(FIXTURE / f"{table}.csv", results_dir.mkdir(exist_ok=True) or results_dir / f"{table}.csv")
    runs = store.load(results_dir, "runs")
    keep = runs[~((runs["role"] == "continual") & (runs["replay_ratio"].fillna(0) != 0.05))]
    (results_dir / "runs.csv").unlink()
    store.append(results_dir, "runs", keep)
    with pytest.raises(MissingFigureData, match="at least two replay ratios"):
        importlib.import_module("cpt_experiments.figures.replay_sweep").make(results_dir)


def test_cli_builds_all_and_reports_skips(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "figs"
    assert main(["--results", str(FIXTURE), "--out", str(out), "--only", "path_switching", "benchmarks"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "benchmarks.pdf", "benchmarks.png", "path_switching.pdf", "path_switching.png"
    ]  # fmt: skip
    partial = _copy_fixture(tmp_path, drop_tables=("evals",))
    args = ["--results", str(partial), "--out", str(out), "--only", "benchmarks", "path_switching", "--formats", "png"]
    assert main(args) == 0  # a partial sweep: build what exists, say what was skipped
    text = capsys.readouterr().out
    assert "benchmarks           skipped: benchmarks: needs evals.csv" in text and "made 1, skipped 1" in text
    assert main([*args, "--strict"]) == 1


def test_unexpected_error_is_reported_as_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    module = importlib.import_module("cpt_experiments.figures.benchmarks")
    monkeypatch.setattr(module, "make", lambda _d: pd.DataFrame().loc["nope"])
    assert main(["--results", str(FIXTURE), "--out", str(tmp_path), "--only", "benchmarks"]) == 1
    assert "benchmarks           failed: KeyError" in capsys.readouterr().out
