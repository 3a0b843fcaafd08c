"""(h) The regime axis (beyond paper 1): continual − union gap against the union's tokens per parameter.

One panel per domain kind (old, new, AVG), one line per shift through the points of
conf/experiment/paper1/regime.yaml (paired over seeds: mean, ± std where n ≥ 2), zero dashed, and the
paper's own 405M point (AVG panel) as a star at its ~1,200-1,500 tokens per parameter.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from cpt_experiments.figures import data, style
from cpt_experiments.results import axes as paper1_axes

NAME = "regime_gap"
KINDS = (("old", "old domain"), ("new", "new domain"), ("avg", "AVG"))


def frame(results_dir: Path) -> pd.DataFrame:
    """``paper1_axes.regime`` over the tables in ``results_dir``: one row per (point, kind) with the gap in nats."""
    return data.from_finals(results_dir, NAME, paper1_axes.regime)


@style.styled
def make(results_dir: Path) -> Figure:
    """Gap (nats/token, > 0 = continual worse than union) vs tokens per parameter (log x), per shift."""
    pts = frame(results_dir)
    fig, axes = style.new_figure(1, len(KINDS), sharex=True)
    fig.set_size_inches(style.PANEL_W * 1.1 * len(KINDS), style.PANEL_H * 1.3)
    colors = style.palette(pts["shift"])
    for ax, (kind, title) in zip(axes[0], KINDS):
        for shift, part in pts[pts["kind"] == kind].groupby("shift", sort=True):
            style.seed_points(ax, part["tokens_per_param"], part["gap"], part["n"], yerr=part["gap_std"],
                              color=colors[shift], label=data.with_n(f"{shift} shift", part["n"]))  # fmt: skip
            if kind == "avg" and shift in paper1_axes.PAPER_REGIME:
                x, y = paper1_axes.PAPER_REGIME[shift]
                ax.plot([x], [y], marker="*", markersize=10, linestyle="none", color=colors[shift],
                        label=f"paper, 405M ({shift})")  # fmt: skip
        ax.axhline(0.0, color=style.FIXED["union"], linestyle="--", linewidth=1.0)
        ax.set_xscale("log")
        ax.set_title(f"continual − union: {title}")
        ax.set_xlabel("union tokens per parameter")
    axes[0][0].set_ylabel("gap (nats/token)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"Regime axis: {style.SEED_NOTE}", fontsize=9)
    return fig
