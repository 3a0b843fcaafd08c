"""(i) Beyond paper 1: forgetting and adaptation against a measured shift score (the shift continuum).

x: the pre-trained model's bits per byte on the new data (web English mixed with 0-100% German,
conf/experiment/paper1/shift_continuum.yaml); left: forgetting (Δ bpb on the old English Wikipedia),
right: adaptation (bpb gained on the new data); one point per German share, ± std over seeds where n ≥ 2.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from cpt_experiments.figures import data, style
from cpt_experiments.results import axes

NAME = "shift_continuum"


def frame(results_dir: Path) -> pd.DataFrame:
    """``axes.shift_continuum`` over the tables in ``results_dir``: one row per German share."""
    return data.from_finals(results_dir, NAME, axes.shift_continuum)


@style.styled
def make(results_dir: Path) -> Figure:
    """Two panels over the shift score: forgetting and adaptation (bits per byte), labelled by German share."""
    pts = frame(results_dir)
    fig, axes = style.new_figure(1, 2, sharex=True)
    for ax, col, title in zip(
        axes[0], ("forgetting", "adaptation"), ("forgetting: Δ bpb on en_old", "adaptation: bpb gained on the new data")
    ):
        style.seed_points(ax, pts["shift_score"], pts[col], pts["n"], yerr=pts[f"{col}_std"],
                          color=style.CYCLE[0], label=data.with_n("continual, no replay", pts["n"]))  # fmt: skip
        for p in pts.itertuples():
            ax.annotate(f"{p.german_share:.0%} de", (p.shift_score, getattr(p, col)), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)  # fmt: skip
        ax.set_title(title)
        ax.margins(x=0.1, y=0.1)  # room for the point labels inside the axes
        ax.set_xlabel("shift score: pre-trained bpb on the new data")
        ax.set_ylabel("bits per byte")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Shift continuum: {style.SEED_NOTE}", fontsize=9)
    return fig
