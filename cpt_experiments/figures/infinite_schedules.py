"""(e) Infinite vs repeated cosine schedules over three stages: loss and logged LR over tokens (paper 1 Fig. 10)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from cpt_experiments.figures import data, style
from cpt_experiments.figures.loss_curves import draw_curves

NAME = "infinite_schedules"
MIN_STAGES = 3


@style.styled
def make(results_dir: Path) -> Figure:
    """Curves of every run with at least three stages in a pretrain→continual chain, one line per schedule."""
    runs = data.load(results_dir, "runs", NAME)
    curves = data.load(results_dir, "curves", NAME)
    chain = runs[runs["role"].isin(["pretrain", "continual"])]
    n_stages = chain.groupby("run_id")["stage"].nunique()
    long_ids = n_stages[n_stages >= MIN_STAGES].index
    sel = chain[chain["run_id"].isin(long_ids)]
    data.require(sel, f"run with >= {MIN_STAGES} pretrain/continual stages in runs.csv (repeated cosine or infinite schedules)", NAME)
    val = curves[curves["run_id"].isin(long_ids) & (curves["split"] != "train") & (curves["metric"] == "loss")]
    domains = sorted(val["split"].unique())
    data.require(val, f"validation loss curves for runs {sorted(long_ids)}", NAME)
    fig, axes = style.new_figure(2, len(domains), sharex="col", height_ratios=[2, 1])
    draw_curves(fig, axes, curves, sel, domains)
    fig.suptitle("Repeated cosine vs infinite schedules (stage boundaries dotted)")
    return fig
