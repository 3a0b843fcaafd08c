"""(c) Continual vs union baseline: final losses, compute used, and benchmark average if evaluated (paper 1 Fig. 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from cpt_experiments.errors import DataError
from cpt_experiments.figures import data, style

NAME = "union_baseline"


def _models(results_dir: Path) -> pd.DataFrame:
    """One row per (shift, label): mean final old/new/AVG loss and token counts over seeds."""
    table = data.stage_table(results_dir, NAME)
    runs = data.load(results_dir, "runs", NAME)
    union = data.require(table[table["role"] == "union"], "stages with role 'union' in runs.csv", NAME)
    cont = table[(table["role"] == "continual") & table["shift"].isin(union["shift"].unique())]
    # Two-dataset comparisons only (a stage continued from pre-training), each stage once.
    cont = cont[data.follows_pretraining(cont, runs)]
    data.require(cont, f"continual stages after pre-training with a union baseline's shift "
                 f"({sorted(union['shift'].unique())})", NAME)  # fmt: skip
    both = data.unique_stages(pd.concat([union, cont], ignore_index=True), runs)
    tokens = runs.set_index(["run_id", "stage"])[["stage_tokens", "cumulative_tokens"]].astype("float64")
    both = both.join(tokens, on=["run_id", "stage"])
    both["label"] = [data.label(r) for _, r in both.iterrows()]
    cols = ["old_loss", "new_loss", "avg", "stage_tokens", "cumulative_tokens"]
    return data.mean_std(both, ["shift", "role", "label"], cols)


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
    return scores.groupby("stage_hash")["value"].mean()


@style.styled
def make(results_dir: Path) -> Figure:
    """Grouped bars of final loss (old/new/AVG) and stacked token bars (pre-training + this stage)."""
    models = _models(results_dir).sort_values(["shift", "role", "label"], ascending=[True, False, True])
    bench = _bench_avg(results_dir)
    ncols = 3 if bench is not None else 2
    fig, axes = style.new_figure(1, ncols, sharey=True)
    fig.set_size_inches(style.PANEL_W * ncols * 1.2, max(style.PANEL_H, 0.3 * len(models) + 1))
    y = np.arange(len(models))
    names = [f"{r.shift}: {r.label}" for r in models.itertuples()]
    ax = axes[0][0]
    for k, (col, name) in enumerate((("old_loss", "old"), ("new_loss", "new"), ("avg", "AVG"))):
        ax.barh(
            y + (k - 1) * 0.27, models[col], height=0.27, xerr=models[f"{col}_std"], label=name, color=style.CYCLE[k]
        )
    lo = np.nanmin(models[["old_loss", "new_loss", "avg"]].to_numpy())
    ax.set_xlim(left=0.9 * lo)
    ax.set_yticks(y, names)
    ax.set_xlabel("final validation loss (nats/token)")
    ax.legend()
    ax = axes[0][1]
    pre = (models["cumulative_tokens"] - models["stage_tokens"]).clip(lower=0)
    ax.barh(y, pre, color="#cccccc", label="pre-training (already paid)")
    ax.barh(y, models["stage_tokens"], left=pre, color=[style.FIXED["union"] if r == "union" else style.CYCLE[0] for r in models["role"]],
            label="this stage")  # fmt: skip
    ax.set_xlabel("tokens trained")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2)
    ax.xaxis.set_major_formatter(EngFormatter())
    if bench is not None:
        ax = axes[0][2]
        table = data.stage_table(results_dir, NAME)
        table["label"] = [data.label(r) for _, r in table.iterrows()]
        hashes = data.load(results_dir, "runs", NAME).set_index(["run_id", "stage"])["stage_hash"]
        table["bench"] = [bench.get(hashes.get(k)) for k in zip(table["run_id"], table["stage"])]
        scores = table.groupby(["shift", "label"])["bench"].mean()
        vals = [scores.get((r.shift, r.label), np.nan) for r in models.itertuples()]
        ax.barh(y, vals, color=style.CYCLE[4])
        ax.set_xlabel("benchmark average (evals.csv)")
    fig.suptitle("Continual pre-training vs union baseline")
    return fig
