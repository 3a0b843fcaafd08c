"""(e) Infinite vs repeated cosine schedules over three stages: loss and logged LR over tokens (paper 1 Fig. 10)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from cpt_experiments.errors import DataError
from cpt_experiments.figures import data, style
from cpt_experiments.figures.loss_curves import draw_curves, label_axes
from cpt_experiments.results import groups

NAME = "infinite_schedules"
MIN_STAGES = 3
#: The compared chains (conf/experiment/{infinite,repeated_cosine}.yaml), every stage of each.
SELECTION: groups.Selection = {"infinite": None, "repeated_cosine": None}
ROLES = ("pretrain", "continual")  # the main path; anneal branches are not part of the chain


def _chain_depth(stages) -> int:
    """Longest parent→child path among one run's stages (siblings do not add depth)."""
    parent = dict(zip(stages["stage"], stages["parent_stage"]))

    def depth(name) -> int:
        p = parent.get(name)
        return 1 + (depth(p) if isinstance(p, str) and p in parent else 0)

    return max(depth(n) for n in parent)


def _select(results_dir: Path, selection: groups.Selection):
    # The chains differ in settings the table records only through the variant (e.g. the cooldown
    # shape), so the variant is a factor for every role here, the pre-training stage included.
    runs = data.runs_table(results_dir, NAME, shared_roles=())
    curves = data.load(results_dir, "curves", NAME)
    chain = groups.select(runs, selection, roles=ROLES)
    data.require(chain, f"stages of {sorted(selection)} with role {' or '.join(ROLES)} in runs.csv", NAME)
    depth = chain.groupby("run_id").apply(_chain_depth, include_groups=False)
    sel = chain[chain["run_id"].isin(depth[depth >= MIN_STAGES].index)]
    data.require(sel, f"run with >= {MIN_STAGES} pretrain/continual stages in runs.csv (repeated cosine or "
                 "infinite schedules)", NAME)  # fmt: skip
    have = set(data.stage_curves(curves, runs)["key"])
    data.require(
        sel[data.stage_key(sel).isin(have)], f"validation loss curves for runs {sorted(set(sel['run_id']))}", NAME
    )
    return sel, runs, curves


def frame(results_dir: Path, selection: groups.Selection = SELECTION) -> pd.DataFrame:
    """The cells drawn: one row per (chain, stage) cell with ``series`` (legend entry of the chain) and ``n``.

    A chain is the stages of runs sharing (experiment, variant); its seeds are pooled stage by
    stage (``groups.aggregate``). Two different configurations under one chain name are an error.
    """
    sel = _select(results_dir, selection)[0]
    cells = groups.aggregate(sel, [])
    cells["series"] = [str(v) if pd.notna(v) else str(e) for v, e in zip(cells["label_variant"], cells["experiment"])]
    clash = cells[cells.duplicated(["series", "stage"], keep=False)]
    if not clash.empty:
        c = clash.iloc[0]
        raise DataError(f"runs: chain {c['series']!r} has {len(clash)} configurations of stage {c['stage']!r}; "
                        "give them distinct variants")  # fmt: skip
    n = cells.groupby("series")["n"].agg(list)
    cells["name"] = [data.with_n(s, n[s]) for s in cells["series"]]
    return cells


@style.styled
def make(results_dir: Path, selection: groups.Selection = SELECTION) -> Figure:
    """Curves of every selected chain at least three stages deep, one line (colour) per chain, mean over seeds."""
    sel, runs, curves = _select(results_dir, selection)
    cells = frame(results_dir, selection)
    mean = data.cell_curves(curves, runs, sel)
    val = mean[(mean["split"] != "train") & (mean["metric"] == "loss")]
    domains = sorted(val["split"].unique())
    data.require(val, f"validation loss curves for runs {sorted(set(sel['run_id']))}", NAME)
    colors = style.palette(cells["name"])
    fig, axes = style.new_figure(2, len(domains), sharex="col", height_ratios=[2, 1])
    draw_curves(axes, mean, [(c, lab, colors[lab]) for c, lab in zip(cells["cell"], cells["name"])], domains)
    label_axes(axes, groups.dedupe(sel), domains)
    style.legend_below(fig, axes[0][-1], ncols=3)
    fig.suptitle("Repeated cosine vs infinite schedules (stage boundaries dotted; mean over seeds, band ± std "
                 "where n ≥ 2)", fontsize=9)  # fmt: skip
    return fig
