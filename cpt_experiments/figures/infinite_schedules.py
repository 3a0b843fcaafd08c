"""(e) Infinite vs repeated cosine schedules over three stages: loss and logged LR over tokens (paper 1 Fig. 10)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from cpt_experiments.figures import data, style
from cpt_experiments.figures.loss_curves import draw_curves

NAME = "infinite_schedules"
MIN_STAGES = 3


def _chain_depth(stages) -> int:
    """Longest parent→child path among one run's stages (siblings do not add depth)."""
    parent = dict(zip(stages["stage"], stages["parent_stage"]))

    def depth(name) -> int:
        p = parent.get(name)
        return 1 + (depth(p) if isinstance(p, str) and p in parent else 0)

    return max(depth(n) for n in parent)


@style.styled
def make(results_dir: Path) -> Figure:
    """Curves of every run whose pretrain→continual chain is at least three stages deep, one line per schedule."""
    runs = data.load(results_dir, "runs", NAME)
    curves = data.load(results_dir, "curves", NAME)
    chain = runs[runs["role"].isin(["pretrain", "continual"])]
    depth = chain.groupby("run_id").apply(_chain_depth, include_groups=False)
    long_ids = depth[depth >= MIN_STAGES].index
    sel = chain[chain["run_id"].isin(long_ids)]
    data.require(
        sel,
        f"run with >= {MIN_STAGES} pretrain/continual stages in runs.csv (repeated cosine or infinite schedules)",
        NAME,
    )
    val = curves[curves["run_id"].isin(long_ids) & (curves["split"] != "train") & (curves["metric"] == "loss")]
    domains = sorted(val["split"].unique())
    data.require(val, f"validation loss curves for runs {sorted(long_ids)}", NAME)
    fig, axes = style.new_figure(2, len(domains), sharex="col", height_ratios=[2, 1])
    draw_curves(fig, axes, curves, sel, domains)
    fig.suptitle("Repeated cosine vs infinite schedules (stage boundaries dotted)")
    return fig
