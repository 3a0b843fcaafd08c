"""(c) Continual vs union baseline: final losses, compute used, and benchmark average if evaluated (paper 1 Fig. 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from cpt_experiments.errors import DataError
from cpt_experiments.figures import data, style
from cpt_experiments.results import groups

NAME = "union_baseline"
#: Experiments with a union baseline and the stages compared with it (conf/experiment/{cpt,quickstart}.yaml).
SELECTION: groups.Selection = {
    "cpt": ("continual", "union"),
    "quickstart": ("de_replay0", "de_replay25", "union"),
    "paper1_final": ("continual", "union"),  # conf/experiment/paper1/final.yaml (paper 1, E4)
}
VALUES = ("old_loss", "new_loss", "avg", "bench")


def _bench_avg(results_dir: Path) -> pd.Series | None:
    """Mean benchmark score per stage content (``stage_hash``) over tasks, or None without score rows.

    Keyed by content so a stage evaluated under one run counts for every run that reuses it.
    """
    try:
        scores = data.benchmark_scores(data.load(results_dir, "evals", NAME))
    except DataError:
        return None
    if scores.empty:
        return None
    hashes = data.load(results_dir, "runs", NAME).set_index(["run_id", "stage"])["stage_hash"]
    scores = scores.assign(stage_hash=[hashes.get(k) for k in zip(scores["run_id"], scores["stage"])])
    per_task = scores.groupby(["stage_hash", "task"])["value"].mean()  # one score per stage and task
    return per_task.groupby("stage_hash").mean()


def frame(results_dir: Path, selection: groups.Selection = SELECTION, metric: str = "loss") -> pd.DataFrame:
    """One row per cell drawn: ``name`` (bar label), role, shift, tokens, mean/``_std``/``_n`` of VALUES (final ``metric``), ``n``.

    Union stages and the continual stages after pre-training with a union baseline's shift, from
    ``selection`` only; each stage once (``stage_hash``), seeds pooled per cell (``groups``), so
    an η_max sweep under one variant name is several bars, not one bar with its spread.
    ``bench`` is the stage's mean benchmark score (NaN where not evaluated).
    """
    table = groups.select(data.stage_table(results_dir, NAME, metric), selection)
    runs = data.load(results_dir, "runs", NAME)
    union = data.require(table[table["role"] == "union"], "stages with role 'union' in runs.csv", NAME)
    cont = table[(table["role"] == "continual") & table["shift"].isin(union["shift"].unique())]
    # Two-dataset comparisons only (a stage continued from pre-training).
    cont = cont[data.follows_pretraining(cont, runs)]
    data.require(cont, f"continual stages after pre-training with a union baseline's shift "
                 f"({sorted(union['shift'].unique())})", NAME)  # fmt: skip
    both = pd.concat([union, cont], ignore_index=True)
    bench = _bench_avg(results_dir)
    both["bench"] = [bench.get(h, np.nan) if bench is not None else np.nan for h in both["stage_hash"]]
    stats = groups.aggregate(both, list(VALUES))
    order = ["shift", "role", "schedule", "eta_max", "replay_ratio", "chain_corpora"]
    stats = stats.sort_values(order, ascending=[True, False, True, True, True, True], na_position="first")
    stats = stats.reset_index(drop=True)
    labels = data.comparison_names(stats)
    stats["name"] = [data.with_n(lab, [n]) for lab, n in zip(labels, stats["n"])]
    return stats


def _bars(ax, y, values, std, n, **kw) -> None:
    """Horizontal bars of the means; ± std bars only for the cells with n ≥ 2 seeds."""
    ax.barh(y, values, **kw)
    many = np.asarray(n) >= 2
    if many.any():
        ax.errorbar(np.asarray(values, dtype=float)[many], np.asarray(y)[many],
                    xerr=np.asarray(std, dtype=float)[many], fmt="none", ecolor="#333333", capsize=2,
                    label=style.SEED_BARS)  # fmt: skip


@style.styled
def make(results_dir: Path, selection: groups.Selection = SELECTION) -> Figure:
    """Grouped bars of final loss (old/new/AVG) and stacked token bars (pre-training + this stage)."""
    metric = data.best_metric(results_dir, NAME)
    models = frame(results_dir, selection, metric)
    has_bench = models["bench_n"].gt(0).any()
    ncols = 3 if has_bench else 2
    fig, axes = style.new_figure(1, ncols, sharey=True)
    fig.set_size_inches(style.PANEL_W * ncols * 1.2, max(style.PANEL_H, 0.3 * len(models) + 1))
    y = np.arange(len(models))
    ax = axes[0][0]
    for k, (col, name) in enumerate((("old_loss", "old"), ("new_loss", "new"), ("avg", "AVG"))):
        _bars(ax, y + (k - 1) * 0.27, models[col], models[f"{col}_std"], models[f"{col}_n"], height=0.27,
              label=name, color=style.CYCLE[k])  # fmt: skip
    lo = np.nanmin(models[["old_loss", "new_loss", "avg"]].to_numpy())
    ax.set_xlim(left=0.9 * lo)
    ax.set_yticks(y, models["name"])
    ax.set_xlabel(f"final validation {data.UNITS[metric]}")
    ax.legend()
    ax = axes[0][1]
    tokens = models[["stage_tokens", "cumulative_tokens"]].astype("float64")
    pre = (tokens["cumulative_tokens"] - tokens["stage_tokens"]).clip(lower=0)
    ax.barh(y, pre, color="#cccccc", label="pre-training (already paid)")
    ax.barh(y, tokens["stage_tokens"], left=pre, color=[style.FIXED["union"] if r == "union" else style.CYCLE[0] for r in models["role"]],
            label="this stage")  # fmt: skip
    ax.set_xlabel("tokens trained")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2)
    ax.xaxis.set_major_formatter(EngFormatter())
    if has_bench:
        _bars(axes[0][2], y, models["bench"], models["bench_std"], models["bench_n"], color=style.CYCLE[4])
        axes[0][2].set_xlabel("benchmark average (evals.csv)")
    fig.suptitle(f"Continual pre-training vs union baseline: {style.SEED_NOTE}", fontsize=9)
    return fig
