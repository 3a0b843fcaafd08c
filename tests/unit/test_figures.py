"""Every figure renders from the fixture results set; missing data raises a named error; the CLI reports skips."""

from __future__ import annotations

import functools
import importlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from cpt_experiments.figures import (
    FIGURES,
    MissingFigureData,
    benchmarks,
    infinite_schedules,
    loss_curves,
    replay_sweep,
    rewarm_sweep,
    style,
    union_baseline,
)
from cpt_experiments.figures.__main__ import main
from cpt_experiments.results import metrics, releases, schema, store

FIXTURE = Path(__file__).parents[1] / "fixtures" / "results"
#: Paper 2: real smoke-scale runs (ptfs and cpt_rewarm and ps-cosine-f20 with seeds 0 and 1; cpt_undecayed,
#: ptfs-knee and ps-knee-f20 with seed 0), validation splits v1..v4 only.
PAPER2 = Path(__file__).parents[1] / "fixtures" / "paper2"
#: Paper 1: real smoke-scale runs of the paper-1 presets (tests/fixtures/paper1/generate.sh).
PAPER1 = Path(__file__).parents[1] / "fixtures" / "paper1"
SOURCE = {"path_switching": PAPER2, "path_switching_families": PAPER2, "regime_gap": PAPER1, "shift_continuum": PAPER1,
          "paper1_claims": PAPER1}  # fmt: skip
WEB = "weak shift, corpora en_new=B_en_web_mix"


@pytest.fixture(scope="module", autouse=True)
def _agg() -> None:
    style.use_agg()


@functools.cache
def _made(name: str, source: Path = FIXTURE) -> Figure:
    """``figures.<name>.make(source)`` of an unedited fixture, drawn once per test process: a make takes seconds
    and the tests here only read its artists (none edits the figure; saving it lays it out, drawing nothing new)."""
    return importlib.import_module(f"cpt_experiments.figures.{name}").make(source)


def _copy_fixture(
    tmp_path: Path,
    drop_roles: tuple[str, ...] = (),
    drop_tables: tuple[str, ...] = (),
    edit_runs=None,
    source: Path = FIXTURE,
) -> Path:
    out = tmp_path / "results"
    out.mkdir()
    for table in schema.TABLES:
        if table in drop_tables or not (source / f"{table}.csv").exists():
            continue
        df = store.load(source, table)
        if drop_roles and table == "runs":
            df = df[~df["role"].isin(drop_roles)]
        if edit_runs is not None and table == "runs":
            df = edit_runs(df)
        store.append(out, table, df)
    return out


def _seed_bars(ax) -> list[tuple[float, float, float]]:
    """(x, y, half-length) of every ± std-over-seeds bar drawn on ``ax``, read back from the artists."""
    out = []
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer) and c.get_label() == style.SEED_BARS:
            horizontal = c.has_xerr and not c.has_yerr
            for seg in c.lines[2][-1].get_segments():  # the y bars (or the x bars of a horizontal-only plot)
                (x0, y0), (x1, y1) = seg
                out.append(
                    ((x0 + x1) / 2, y0, abs(x1 - x0) / 2) if horizontal else (x0, (y0 + y1) / 2, abs(y1 - y0) / 2)
                )
    return sorted(out)


def _lines(ax) -> dict[str, object]:
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


@pytest.mark.parametrize("name", FIGURES)
def test_figure_renders_from_fixture(name: str, tmp_path: Path) -> None:
    fig = _made(name, SOURCE.get(name, FIXTURE))
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
        ("path_switching_families", ("branch",), (), r"path_switching_families: no path-switching variant"),
        ("infinite_schedules", (), ("curves",), r"infinite_schedules: needs curves\.csv: .*curves\.csv"),
        ("benchmarks", (), ("evals",), r"benchmarks: needs evals\.csv"),
        ("loss_curves", ("continual",), (), r"loss_curves: no runs with role 'continual'"),
        ("rewarm_sweep", ("continual",), (), r"rewarm_sweep: no replay-free continual stages"),
        ("replay_sweep", ("continual",), (), r"replay_sweep: no continual stages"),
        ("regime_gap", ("union",), (), r"regime_gap: runs: no finished continual and union stages of paper1_regime"),
        ("shift_continuum", ("continual",), (), r"shift_continuum: curves: no paper1_shift_continuum run has bits"),
    ],
)  # fmt: skip
def test_missing_data_raises_named_error(tmp_path: Path, name, drop_roles, drop_tables, match) -> None:
    results_dir = _copy_fixture(tmp_path, drop_roles, drop_tables, source=SOURCE.get(name, FIXTURE))
    with pytest.raises(MissingFigureData, match=match) as info:
        importlib.import_module(f"cpt_experiments.figures.{name}").make(results_dir)
    assert "\n" not in str(info.value)


def test_replay_sweep_needs_two_ratios(tmp_path: Path) -> None:
    results_dir = tmp_path / "r"
    for table in schema.TABLES:
        shutil.copy(FIXTURE / f"{table}.csv", results_dir.mkdir(exist_ok=True) or results_dir / f"{table}.csv")
    runs = store.load(results_dir, "runs")
    keep = runs[~((runs["role"] == "continual") & (runs["replay_ratio"].fillna(0) != 0.05))]
    (results_dir / "runs.csv").unlink()
    store.append(results_dir, "runs", keep)
    with pytest.raises(MissingFigureData, match="at least two replay ratios"):
        importlib.import_module("cpt_experiments.figures.replay_sweep").make(results_dir)


def test_cli_builds_all_and_reports_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "figs"
    assert main(["--results", str(FIXTURE), "--out", str(out), "--only", "replay_sweep", "benchmarks"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "benchmarks.pdf", "benchmarks.png", "replay_sweep.pdf", "replay_sweep.png"
    ]  # fmt: skip
    # Drawn for real above; below the CLI's skip reporting is under test, so replay_sweep (which reads no
    # evals.csv: the same figure) is not drawn twice more.
    drawn = _made("replay_sweep")
    monkeypatch.setattr(replay_sweep, "make", lambda _results: drawn)
    partial = _copy_fixture(tmp_path, drop_tables=("evals",))
    args = ["--results", str(partial), "--out", str(out), "--only", "benchmarks", "replay_sweep", "--formats", "png"]
    assert main(args) == 0  # a partial sweep: build what exists, say what was skipped
    text = capsys.readouterr().out
    assert "benchmarks           skipped: benchmarks: needs evals.csv" in text and "made 1, skipped 1" in text
    assert main([*args, "--strict"]) == 1


def test_unexpected_error_is_reported_as_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    module = importlib.import_module("cpt_experiments.figures.benchmarks")
    monkeypatch.setattr(module, "make", lambda _d: pd.DataFrame().loc["nope"])
    assert main(["--results", str(FIXTURE), "--out", str(tmp_path), "--only", "benchmarks"]) == 1
    assert "benchmarks           failed: KeyError" in capsys.readouterr().out


# --- honest aggregation: each stage once, seeds only within a cell, bars only for n >= 2 ------------


def test_fixture_reuses_one_stage_in_three_runs() -> None:
    runs = store.load(FIXTURE, "runs")
    h = runs.loc[(runs["experiment"] == "quickstart") & (runs["stage"] == "de_replay0"), "stage_hash"].item()
    assert (runs["stage_hash"] == h).sum() == 3  # two cpt runs (different config hashes) and the quickstart
    # The repeated-cosine chain has a strong-shift stage with the same factors but other content.
    rc = runs[(runs["experiment"] == "repeated_cosine") & (runs["shift"] == "strong")]
    assert len(rc) == 1 and rc["stage_hash"].item() != h


def test_replay_sweep_draws_each_stage_once_with_seed_bars_only_where_n_ge_2() -> None:
    stats = replay_sweep.frame(FIXTURE)
    strong = stats[stats["series"] == "strong shift"].set_index("replay_ratio")
    # The stage in three runs counts once; repeated_cosine/d2 (4.5) is another experiment, not a seed.
    assert strong.loc[0.0, "old_loss"] == 3.5 and strong.loc[0.0, "n"] == 1 and pd.isna(strong.loc[0.0, "old_loss_std"])
    fig = _made("replay_sweep")
    old = fig.axes[0]
    lines = _lines(old)
    points = {n for n in lines if not n.startswith("union, ")}
    assert points == {"strong shift (n=1)", f"{WEB} (n=1–2)", "weak shift, corpora en_new=D_en_news (n=1)"}
    # The union reference of each series' own data; the cell on another corpus has none.
    assert set(lines) - points == {"union, strong shift", f"union, {WEB}"}
    ref = metrics.union_reference(
        metrics.stage_table(
            metrics.loss_matrix(store.load(FIXTURE, "curves"), store.load(FIXTURE, "runs")), store.load(FIXTURE, "runs")
        )
    )
    strong_union = ref[ref["shift"] == "strong"]["old_loss"].item()
    assert lines["union, strong shift"].get_ydata()[0] == pytest.approx(strong_union)
    assert list(lines["strong shift (n=1)"].get_ydata()) == pytest.approx([3.5, 3.25, 3.0833333])
    assert list(lines[f"{WEB} (n=1–2)"].get_xdata()) == [0.0, 1.0, 5.0, 25.0]
    # Bars only at web 0% and 5%, the two cells with seeds 0 and 1: std of (3.25, 3.28) and (3.125, 3.155).
    assert _seed_bars(old) == [
        pytest.approx((0.0, 3.265, 0.03 / np.sqrt(2))),
        pytest.approx((5.0, 3.14, 0.03 / np.sqrt(2))),
    ]


def test_different_corpora_are_never_pooled() -> None:
    stats = replay_sweep.frame(FIXTURE)
    zero = stats[stats["replay_ratio"] == 0.0].set_index("series")
    assert zero.loc["weak shift, corpora en_new=D_en_news", "old_loss"] == 3.35  # its own line, n=1
    assert zero.loc[WEB, "old_loss"] == pytest.approx(3.265) and zero.loc[WEB, "n"] == 2
    models = union_baseline.frame(FIXTURE).set_index("name")
    assert (
        models.loc["weak: replay 0%, schedule=rewarm_cosine, η_max=0.0003, corpora en_new=D_en_news (n=1)", "avg"]
        == 3.25
    )


def test_union_baseline_never_shows_an_eta_sweep_as_seed_error(tmp_path: Path) -> None:
    # As in results/cpu: every strong no-replay stage carries one variant name whatever its η_max.
    def one_variant(runs: pd.DataFrame) -> pd.DataFrame:
        strong = (runs["shift"] == "strong") & (runs["role"] == "continual") & (runs["replay_ratio"] == 0.0)
        return runs.assign(variant=runs["variant"].mask(strong, "strong-replay0"))

    results_dir = _copy_fixture(tmp_path, edit_runs=one_variant)
    models = union_baseline.frame(results_dir)
    strong = models[(models["shift"] == "strong") & (models["role"] == "continual") & (models["replay_ratio"] == 0.0)]
    assert sorted(strong["eta_max"]) == [3e-5, 3e-4, 6e-4] and (strong["n"] == 1).all()  # three bars, no spread
    fig = union_baseline.make(results_dir)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == len(models) == len(set(labels))
    # ± std bars only on the three cells with two seeds (weak union, weak 0% and 5% on the web mix), per column.
    two = {labels.index(n) for n in models.loc[models["n"] >= 2, "name"]}
    bars = _seed_bars(ax)
    assert len(bars) == 3 * len(two) == 9
    assert {round(y) for _, y, _ in bars} == two


def test_rewarm_sweep_pools_seeds_per_eta_only() -> None:
    stats = rewarm_sweep.frame(FIXTURE)
    weak = stats[stats["shift"] == "weak"]
    # Beside the sweep: the constant-η_min schedule and the union, one point each.
    others = sorted(weak.loc[~weak["series"].str.startswith("rewarm"), "series"])
    assert others == ["constant η_min, corpora en_new=B_en_web_mix", "union"]
    weak = weak[weak["series"].str.startswith("rewarm")]
    assert list(weak["eta_max"]) == [1.5e-4, 3e-4, 6e-4] and list(weak["n"]) == [1, 2, 1]
    assert weak["forgetting"].tolist() == pytest.approx([0.15, 0.255, 0.40])
    fig = _made("rewarm_sweep")
    weak_ax = next(ax for ax in fig.axes if ax.get_title() == "weak shift")
    # Seed bars at the two-seed η_max point and at the union (two seeds: forgetting −0.05, adaptation 0.28).
    assert [b[:2] for b in _seed_bars(weak_ax)] == [pytest.approx((-0.05, 0.28)), pytest.approx((0.255, 0.405))]
    strong_ax = next(ax for ax in fig.axes if ax.get_title() == "strong shift")
    assert _seed_bars(strong_ax) == []


def test_loss_curves_one_line_per_cell_band_only_where_n_ge_2() -> None:
    cells = loss_curves.frame(FIXTURE)
    assert sorted(cells["n"]) == [1, 1, 1, 1, 2, 2, 2] and (cells["role"] == "pretrain").sum() == 1
    assert (cells["role"] == "union").sum() == 1  # the union baseline of these runs, as a curve
    fig = _made("loss_curves")
    ax = fig.axes[0]
    lines = _lines(ax)
    name = "schedule=rewarm_cosine, η_max=0.0003, corpora en_new=B_en_web_mix (n=2)"
    assert lines[name].get_ydata()[-1] == pytest.approx(3.265)  # mean of the two seeds' final en_old loss
    assert len(lines) == len(cells)  # the reused stages are not redrawn
    assert lines["union (n=2)"].get_linestyle() == "--"
    bands = [c for c in ax.collections if isinstance(c, PolyCollection) and c.get_label() == style.SEED_BARS]
    assert len(bands) == 3  # pre-training, the 3e-4 web cell and the union
    # Each continual line starts at its parent's last point (the stage boundary), so the jump shows.
    pre_end = lines["pre-training (n=2)"].get_xdata()[-1]
    assert lines[name].get_xdata()[0] == pre_end


def test_infinite_schedules_pool_a_chain_over_seeds() -> None:
    cells = infinite_schedules.frame(FIXTURE)
    assert sorted(set(cells["name"])) == ["infinite cosine (n=2)", "infinite invsqrt (n=1)", "repeated cosine (n=1)"]
    assert len(cells) == 9  # three stages per chain


def test_benchmarks_count_a_stage_evaluated_under_two_runs_once() -> None:
    stats = benchmarks.frame(FIXTURE)
    arc = stats[stats["task"] == "arc_easy"].set_index("name")
    assert arc.loc["strong: replay 0% (n=1)", "n"] == 1  # evaluated under the cpt run and the quickstart
    assert arc.loc["weak: replay 0% (n=2)", "value"] == pytest.approx(0.425)
    fig = _made("benchmarks")
    assert sum(len(_seed_bars(ax)) for ax in fig.axes) == len(stats[stats["n"] >= 2]) == 6


def test_path_switching_draws_seed_paired_differences_to_ptfs_with_the_papers_mark() -> None:
    rel = releases.released(store.load(PAPER2, "curves"), store.load(PAPER2, "runs"))
    fig = _made("path_switching", PAPER2)
    ax = fig.axes[0]  # (a) at the same version
    assert set(_lines(ax)) == {"CPT (a) re-warm + decay (n=2)", "path switching f=0.2 (n=2)",
                               "paper: path switching matches PTFS (v4)"}  # fmt: skip
    d = releases.paired(rel, ("path_switching", "ps-cosine-f20"), ("ptfs", "ptfs-cosine"))
    line = _lines(ax)["path switching f=0.2 (n=2)"]
    assert list(line.get_ydata()) == pytest.approx(list(d["diff"]))
    assert [b[2] for b in _seed_bars(ax) if b[0] in (1.0, 2.0, 3.0, 4.0)]  # two seeds: bars
    tokens = _lines(fig.axes[1])  # (b) matched tokens: path switching only, no release 4
    assert set(tokens) == {"path switching f=0.2 (n=2)"}
    assert list(tokens["path switching f=0.2 (n=2)"].get_xdata()) == [1, 2, 3]


def test_path_switching_families_compares_each_family_with_its_own_ptfs() -> None:
    fig = _made("path_switching_families", PAPER2)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["cosine family, seeds: n=2", "knee family, seeds: n=1"]  # no multistep runs: no empty panel
    assert set(_lines(fig.axes[1])) == {"path switching f=0.2", "paper: matches PTFS"}


def test_palette_is_keyed_by_strategy_not_by_draw_order() -> None:
    # One strategy, one look, whatever else a figure draws and in whatever order.
    assert style.strategy("ps-f45") == style.STRATEGIES["ps-f45"]
    assert style.paper2_key("ps-knee-f45") == style.paper2_key("ps-cosine-f45") == "ps-f45"
    assert style.strategy("replay-0.25")[:2] == ("CPT 25% replay", style.REPLAY[0.25])
    looks = [style.strategy(k)[1:] for k in style.STRATEGIES]
    assert len(set(looks)) == len(looks)  # no two strategies share colour and marker
    assert style.strategy("some new strategy") == style.strategy("some new strategy")  # stable for unknown keys
    a = _made("path_switching", PAPER2).axes[0]
    b = _made("path_switching_families", PAPER2).axes[0]
    colour = {line.get_label().split(" (n=")[0]: line.get_color() for line in [*a.get_lines(), *b.get_lines()]
              if line.get_label().startswith("path switching f=0.2")}  # fmt: skip
    assert set(colour.values()) == {style.STRATEGIES["ps-f20"][1]}


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_names_its_number_of_seeds(name: str) -> None:
    fig = _made(name, SOURCE.get(name, FIXTURE))
    texts = [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]
    texts += [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert any("n=" in t or "n = " in t for t in texts), f"{name}: says nowhere how many seeds it shows"


def test_cli_refuses_a_missing_results_dir_and_an_unwritable_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cpt_experiments.figures.__main__ import main

    assert main(["--results", str(tmp_path / "nope")]) == 2
    assert "no runs.csv there" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where the output directory should be: mkdir fails for any user
    assert main(["--results", str(FIXTURE), "--out", str(blocker / "figures")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_benchmark_scores_keep_family_groups_not_their_members() -> None:
    from cpt_experiments.figures.data import benchmark_scores

    rows = [dict(run_id="r", stage="s", task=t, metric="acc", value=0.5)
            for t in ("cpt_blimp", "cpt_blimp_adjunct_island", "cpt_blimp_field_syntax", "cpt_multiblimp_de",
                      "cpt_multiblimp_de_word_order_obj", "cpt_piqa")]  # fmt: skip
    assert sorted(benchmark_scores(pd.DataFrame(rows))["task"]) == ["cpt_blimp", "cpt_multiblimp_de", "cpt_piqa"]


def test_paper1_figures_show_both_shifts_bpb_baselines_and_chance() -> None:
    fig = _made("loss_curves", PAPER1)
    titles = {ax.get_title() for ax in fig.axes}
    assert {"weak shift: validation loss: en_new", "strong shift: validation loss: de_new"} <= titles
    strong = next(ax for ax in fig.axes if ax.get_title() == "strong shift: validation loss: de_new")
    assert {"CPT constant η_min (n=2)", "union (from scratch) (n=2)"} <= set(_lines(strong))  # the naming table
    sweep = _made("replay_sweep", PAPER1)
    assert sweep.axes[0].get_ylabel() == "bits per byte"
    assert {"union, strong shift", "union, weak shift"} <= set(_lines(sweep.axes[1]))
    points = rewarm_sweep.frame(PAPER1)
    assert {"constant η_min", "union"} <= set(points["series"])
    bench = _made("benchmarks", PAPER1).axes[0]
    chance = [c for c in bench.collections if c.get_label() == "_chance"]
    assert len(chance) == 2 and all(seg[0][1] == 0.5 for c in chance for seg in c.get_segments())


def test_paper1_infinite_schedules_draw_branches_dashed_and_one_panel_for_the_shared_validation_set() -> None:
    fig = _made("infinite_schedules", PAPER1)
    titles = [ax.get_title() for ax in fig.axes]
    assert "validation loss: s1 = s2 = s3 (one set)" in titles  # three splits, one validation set: one panel
    ax = next(a for a in fig.axes if a.get_title().startswith("validation loss"))
    styles = {line.get_linestyle() for line in ax.get_lines()}
    assert {"-", "--"} <= styles  # main paths solid, anneal branches dashed
    releases = next(a for a in fig.axes if a.get_title().startswith("released models"))
    assert len(_lines(releases)) == 3  # repeated cosine and the two infinite schedules, three releases each
    assert all(len(line.get_xdata()) == 3 for line in _lines(releases).values())


def test_regime_gap_draws_one_point_per_budget_with_seed_bars() -> None:
    from cpt_experiments.figures import regime_gap

    pts = regime_gap.frame(PAPER1)
    avg = pts[pts["kind"] == "avg"]
    assert len(avg) == 2 and set(avg["n"]) == {2}  # two budgets of the smoke model, seeds 0 and 1
    assert avg["tokens_per_param"].is_monotonic_increasing
    fig = _made("regime_gap", PAPER1)
    assert len(_seed_bars(fig.axes[2])) == 2


def test_two_series_of_one_strategy_get_their_own_colours() -> None:
    """Two union baselines of different data in one block: the first keeps the union colour, the second takes a
    colour no strategy drawn beside it owns (never both black dashed)."""
    keys = ["pretrain", "replay-0", "union", "union", "replay-0"]
    names = ["pre-trained (n=3)", "CPT (n=3)", "union, wiki (n=3)", "union, web (n=1)", "CPT (n=3)"]
    colors = style.series_colors(keys, names)
    assert len(colors) == 4 and len(set(colors.values())) == 4
    assert colors["union, wiki (n=3)"] == style.strategy("union")[1]
    assert colors["union, web (n=1)"] not in {style.strategy(k)[1] for k in keys}
