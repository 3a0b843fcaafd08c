"""(e) Infinite vs repeated cosine schedules over three datasets or splits: loss and logged LR over tokens,
the anneal branches dashed, and each release's final loss (paper 1 Fig. 10).

The main path of a chain (roles pretrain, continual, main) is a solid line; an anneal branch (role
branch: the model released at the end of a split) is a dashed line of the chain's colour. Domains whose
curves are identical (paper 1's three splits of one corpus share one validation set) are drawn once,
and the domains are ordered as the chain first trains on them (D0 → D2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from cpt_experiments.errors import DataError
from cpt_experiments.figures import data, style
from cpt_experiments.figures.loss_curves import draw_curves, label_axes
from cpt_experiments.results import claims, groups

NAME = "infinite_schedules"
MIN_STAGES = 3
#: The compared chains: conf/experiment/{infinite,repeated_cosine}.yaml (three datasets) and paper 1's
#: compute-matched presets over three splits (conf/experiment/paper1/{infinite,cosine}_splits.yaml).
SELECTION: groups.Selection = {
    "infinite": None, "repeated_cosine": None, "paper1_infinite_splits": None, "paper1_cosine_splits": None,
}  # fmt: skip
MAIN_ROLES = ("pretrain", "continual", "main")  # the chain; anneal branches hang off it
ROLES = (*MAIN_ROLES, "branch")


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
    main = chain[chain["role"].isin(MAIN_ROLES)]
    depth = main.groupby("run_id").apply(_chain_depth, include_groups=False) if not main.empty else pd.Series()
    sel = chain[chain["run_id"].isin(depth[depth >= MIN_STAGES].index)]
    data.require(sel, f"run with >= {MIN_STAGES} pretrain/continual stages in runs.csv (repeated cosine or "
                 "infinite schedules)", NAME)  # fmt: skip
    have = set(data.stage_curves(curves, runs)["key"])
    data.require(
        sel[groups.content_key(sel).isin(have)], f"validation loss curves for runs {sorted(set(sel['run_id']))}", NAME
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
    cells["name"] = [data.with_n(style.strategy(s)[0], n[s]) for s in cells["series"]]
    return cells


def domains(mean: pd.DataFrame, sel: pd.DataFrame) -> list[list[str]]:
    """Validation domains in the order the chains first train on them, identical ones grouped
    (e.g. [["s1", "s2", "s3"]] for three splits sharing one validation set)."""
    val = mean[(mean["split"] != "train") & (mean["metric"] == "loss")]
    trained = [d for d in sel.sort_values("cumulative_tokens")["new_domain"].dropna() if d in set(val["split"])]
    order = list(dict.fromkeys(trained)) or sorted(val["split"].unique())
    series = {d: val[val["split"] == d].set_index(["cell", "tokens"])["value"].sort_index() for d in order}
    out: list[list[str]] = []
    for d in order:
        same = next((g for g in out if series[g[0]].index.equals(series[d].index)
                     and np.allclose(series[g[0]].to_numpy(), series[d].to_numpy())), None)  # fmt: skip
        if same is not None:
            same.append(d)
        else:
            out.append([d])
    return out


def releases(mean: pd.DataFrame, cells: pd.DataFrame, domain: str) -> pd.DataFrame:
    """Each chain's released models on ``domain``: the last point of every branch cell, else of every
    main-path stage that ends a split (a chain without branches releases at its stage ends)."""
    val = mean[(mean["split"] == domain) & (mean["metric"] == "loss")]
    rows = []
    for series, part in cells.groupby("series", sort=True):
        ends = part[part["role"] == "branch"]
        if ends.empty:
            ends = part
        for c in ends.itertuples():
            line = val[val["cell"] == c.cell].sort_values("tokens")
            if not line.empty:
                last = line.iloc[-1]
                rows.append({"series": series, "name": c.name, "stage": c.stage, "tokens": last["tokens"],
                             "value": last["value"], "std": last["std"], "n": last["n"]})  # fmt: skip
    return pd.DataFrame(rows, columns=["series", "name", "stage", "tokens", "value", "std", "n"])


@style.styled
def make(results_dir: Path, selection: groups.Selection = SELECTION) -> Figure:
    """Curves of every selected chain at least three stages deep (one colour per chain, branches dashed),
    and a panel of the released models' final losses with a y-range that shows their differences."""
    sel, runs, curves = _select(results_dir, selection)
    cells = frame(results_dir, selection)
    mean = data.from_boundary(data.cell_curves(curves, runs, sel), cells)
    data.require(mean[(mean["split"] != "train") & (mean["metric"] == "loss")],
                 f"validation loss curves for runs {sorted(set(sel['run_id']))}", NAME)  # fmt: skip
    groups_ = domains(mean, sel)
    cols = [g[0] for g in groups_]
    colors = {s: style.strategy(s)[1] for s in cells["series"]}
    fig, axes = style.new_figure(2, len(cols) + 1, sharex="col", height_ratios=[2, 1])
    fig.set_size_inches(style.PANEL_W * 1.2 * (len(cols) + 1), style.PANEL_H * 1.9)
    curve_axes = [[axes[0][j] for j in range(len(cols))], [axes[1][j] for j in range(len(cols))]]
    # Main-path stages first, so a chain's legend entry is its solid line.
    order = cells.assign(_b=cells["role"] == "branch").sort_values("_b", kind="mergesort")
    lines = [(c, name, colors[s]) for c, name, s in zip(order["cell"], order["name"], order["series"])]
    dashed = list(cells.loc[cells["role"] == "branch", "cell"])
    draw_curves(curve_axes, mean, lines, cols, dashed=dashed)
    label_axes(curve_axes, groups.dedupe(sel[sel["role"].isin(MAIN_ROLES)]), cols)
    for j, g in enumerate(groups_):
        if len(g) > 1:
            curve_axes[0][j].set_title(f"validation loss: {' = '.join(g)} (one set)")
        # The first tenth of training is far above everything after it; start the y-range after it.
        late = mean[
            (mean["split"] == g[0]) & (mean["metric"] == "loss") & (mean["tokens"] > 0.1 * mean["tokens"].max())
        ]
        if not late.empty:
            lo, hi = late["value"].min(), late["value"].max()
            curve_axes[0][j].set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    ax = axes[0][-1]
    rel = releases(mean, cells, cols[-1])
    for series, part in rel.groupby("series", sort=True):
        style.seed_points(ax, part["tokens"], part["value"], part["n"], yerr=part["std"], color=colors[series],
                          label=data.with_n(style.strategy(series)[0], part["n"]), linestyle=":")  # fmt: skip
    shared = next((g for g in groups_ if g[0] == cols[-1]), [cols[-1]])
    ax.set_title(f"released models: final loss on {' = '.join(shared)}", fontsize=8)
    ax.set_xlabel("tokens (cumulative)")
    ax.tick_params(labelbottom=True)  # its column partner below is empty
    ax.xaxis.set_major_formatter(EngFormatter())
    ax.set_ylabel("loss (nats/token)")
    _differences(axes[1][-1], results_dir, rel)
    style.legend_below(fig, curve_axes[0][-1], ncols=3)
    fig.suptitle("Repeated cosine vs infinite schedules (main path solid, anneal branches dashed, stage boundaries "
                 "dotted; mean over seeds, band/bars ± std where n ≥ 2)", fontsize=9)  # fmt: skip
    return fig


def _differences(ax, results_dir: Path, rel: pd.DataFrame) -> None:
    """Claim 10 as a difference: each infinite schedule's release − the repeated cosine per split, seed-paired
    (``claims.claims_table``; ± std over seeds) at the releases' tokens (the x axis it shares with the panel above),
    y = 0 the paper's "similar loss"; the panel is off without it."""
    try:
        ct = claims.claims_table(results_dir)
    except DataError:
        ct = pd.DataFrame(columns=["group"])
    diff = ct[ct["group"].astype(str).str.startswith("10-")]
    if diff.empty:
        ax.axis("off")
        return
    style.zero_line(ax)
    for group, part in diff.groupby("group", sort=True):
        label, color, marker = style.strategy(f"infinite-{group.removeprefix('10-')}")
        split = part["label"].str.removeprefix("split ").astype(int).to_numpy()
        at = np.sort(rel.loc[rel["series"] == "repeated-cosine", "tokens"].to_numpy(dtype=float))
        x = at[split - 1] if len(at) >= split.max() else split
        style.seed_points(ax, x, part["ours"], part["n"], yerr=part["ours_std"], color=color,
                          label=data.with_n(label, part["n"]))  # fmt: skip
    ax.plot([], [], color="#999999", linewidth=0.8, label="paper: similar loss (0)")
    ax.set_xlabel("tokens (cumulative) of releases 1, 2, 3")
    ax.set_ylabel("Δ loss (nats/token)")
    ax.set_title("claim 10: infinite release − repeated cosine (seed-paired)", fontsize=8)
