"""(f) Paper 2: loss of the released model per version and cumulative cost, PTFS vs CPT vs path switching."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from cpt_experiments.errors import DataError
from cpt_experiments.figures import MissingFigureData, data, style
from cpt_experiments.results import metrics

NAME = "path_switching"


@style.styled
def make(results_dir: Path, unit: str = "tokens") -> Figure:
    """Left: final loss per version and strategy. Right: cumulative cost, annotated with the ratio to PTFS.

    Losses are means over the seeds of each cell (``metrics.version_losses``), ± std bars only
    where n ≥ 2. The ratio is C_strategy(N) / C_PTFS(N) from ``metrics.cumulative_cost`` (formula there).
    """
    runs = data.load(results_dir, "runs", NAME)
    curves = data.load(results_dir, "curves", NAME)
    try:
        losses = metrics.version_losses(metrics.loss_matrix(curves, runs), runs)
        costs = metrics.cost_ratio(metrics.cumulative_cost(runs, unit=unit))
    except DataError as exc:
        raise MissingFigureData(f"{NAME}: {exc}") from None
    for df in (losses, costs):
        df["name"] = [v or s for s, v in zip(df["strategy"], df["variant"])]
    colors = style.palette(list(losses["name"]) + list(costs["name"]))
    fig, axes = style.new_figure(1, 2)
    ax = axes[0][0]
    for name, part in losses.groupby("name"):
        part = part.sort_values("version")
        style.seed_points(ax, part["version"], part["loss"], part["n_seeds"], yerr=part["loss_std"],
                          color=colors[name], label=data.with_n(name, part["n_seeds"]))  # fmt: skip
    ax.set_xlabel("version")
    ax.set_ylabel("final validation loss (nats/token)")
    ax.set_title("released model per version")
    ax.legend()
    ax = axes[0][1]
    for name, part in costs.groupby("name"):
        ax.plot(part["version"], part["cumulative_cost"], marker="o", color=colors[name], label=name)
        last = part.sort_values("version").iloc[-1]
        ax.annotate(f"{last['ratio_to_ptfs']:.0%} of PTFS", (last["version"], last["cumulative_cost"]),
                    textcoords="offset points", xytext=(-10, 6), fontsize=7, ha="right")  # fmt: skip
    ax.set_xlabel("version")
    ax.set_ylabel(f"cumulative cost ({unit})")
    ax.set_title("total training cost")
    for a in axes[0]:
        a.set_xticks(sorted(losses["version"].unique()))
    fig.suptitle(f"Path switching vs PTFS vs CPT: {style.SEED_NOTE}", fontsize=9)
    return fig
