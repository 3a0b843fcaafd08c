"""(h) The regime axis (beyond paper 1): continual − union gap against the union's tokens per parameter.

One panel per domain kind (old, new, AVG), one line per shift through the points of
conf/experiment/paper1/regime.yaml (the model shrinks along it; solid) and, where it has rows, of
conf/experiment/paper1/budget_axis.yaml (one model, the budget grows; dashed), paired over seeds
(mean, ± std where n ≥ 2), zero dashed, and the paper's own 405M point (AVG panel) as a star. The top row
counts every parameter, the bottom row only the non-embedding ones (embeddings are 72-84% of the small models).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from cpt_experiments.errors import DataError
from cpt_experiments.figures import data, style
from cpt_experiments.results import axes as paper1_axes

NAME = "regime_gap"
KINDS = (("old", "old domain"), ("new", "new domain"), ("avg", "AVG"))
#: The two axes: (experiment, label, line style).
AXES = (("paper1_regime", "model size axis", "-"), ("paper1_budget_axis", "budget axis, neox_d64", "--"))
#: x columns of the two rows: tokens per parameter, all of them or the non-embedding ones.
ROWS = (("tokens_per_param", "params"), ("tokens_per_param_non_embedding", "non-embedding params"))
#: Pythia-410M's non-embedding parameters: 405,334,016 minus two 50,304 x 1,024 tables (untied).
PAPER_NON_EMBEDDING = 405_334_016 - 2 * 50_304 * 1_024


def _both_axes(fin: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for experiment, *_ in AXES:
        try:
            parts.append(paper1_axes.regime(fin, experiment).assign(axis=experiment))
        except DataError:
            continue
    if not parts:
        raise DataError("runs: no finished continual and union stages of paper1_regime or paper1_budget_axis")
    return pd.concat(parts, ignore_index=True)


def frame(results_dir: Path) -> pd.DataFrame:
    """``paper1_axes.regime`` of both axes over the tables in ``results_dir``: one row per (axis, point, kind)."""
    return data.from_finals(results_dir, NAME, _both_axes)


@style.styled
def make(results_dir: Path) -> Figure:
    """Gap (nats/token, > 0 = continual worse than union) vs tokens per parameter (log x), per shift."""
    pts = frame(results_dir)
    fig, axes = style.new_figure(len(ROWS), len(KINDS), sharex="row", sharey=True)
    fig.set_size_inches(style.PANEL_W * 1.1 * len(KINDS), style.PANEL_H * 1.3 * len(ROWS))
    colors = style.palette(pts["shift"])
    for row, (xcol, counted) in zip(axes, ROWS):
        for ax, (kind, title) in zip(row, KINDS):
            for experiment, label, linestyle in AXES:
                here = pts[(pts["kind"] == kind) & (pts["axis"] == experiment)]
                for shift, part in here.groupby("shift", sort=True):
                    style.seed_points(ax, part[xcol], part["gap"], part["n"], yerr=part["gap_std"],
                                      color=colors[shift], linestyle=linestyle,
                                      label=data.with_n(f"{shift} shift, {label}", part["n"]))  # fmt: skip
            if kind == "avg":
                for shift, (x, y) in paper1_axes.PAPER_REGIME.items():
                    if shift in colors:
                        x = x if xcol == "tokens_per_param" else x * 405e6 / PAPER_NON_EMBEDDING
                        ax.plot([x], [y], marker="*", markersize=10, linestyle="none", color=colors[shift],
                                label=f"paper, 405M ({shift})")  # fmt: skip
            ax.axhline(0.0, color=style.FIXED["union"], linestyle="--", linewidth=1.0)
            ax.set_xscale("log")
            ax.set_title(f"continual − union: {title}")
            ax.set_xlabel(f"union tokens per {counted.removesuffix('params')}parameter")
        row[0].set_ylabel("gap (nats/token)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"Regime and budget axes: {style.SEED_NOTE}", fontsize=9)
    return fig
