"""(a) Validation loss per domain over cumulative tokens for schedule variants, logged LR beneath.

Mirrors paper 1 Figs. 3-4: a block of rows per distribution shift (weak, strong), one column per
validation domain (old, new), one line per cell (mean over its seeds, a ± std band where n ≥ 2, n in
the legend), the union baseline of the same data as a dashed curve over its whole run, stage
boundaries dotted; under each block the LR the callback applied (curves metric ``lr``, split
``train``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from cpt_experiments.figures import data, style
from cpt_experiments.results import groups

NAME = "loss_curves"
#: Continual stages drawn (conf/experiment/{cpt,quickstart}.yaml, paper 1's re-warming presets and its final
#: comparison); their parents and the union baseline of their runs are drawn too.
SELECTION: groups.Selection = {
    "cpt": ("continual",), "quickstart": ("de_replay0", "de_replay25"),
    "paper1_rewarm": ("continual",), "paper1_final": ("continual",),
}  # fmt: skip
SHIFTS = ("weak", "strong")


def draw_curves(
    axes, mean: pd.DataFrame, lines: Sequence[tuple[str, str, str]], domains: list[str], dashed: Sequence[str] = ()
) -> None:
    """Loss per domain (top row) and logged LR (bottom row) of each line, from ``data.cell_curves`` output.

    ``lines`` are (cell, legend label, colour); cells sharing a label are drawn as one legend entry
    (a chain of stages). Where n ≥ 2 seeds reached a point, a ± std band is shaded. Cells in ``dashed``
    (baselines) are drawn dashed.
    """
    drawn: set[tuple[int, str]] = set()
    # LR paths often coincide (two constant phases at one η): earlier entries are drawn wider underneath.
    order = list(dict.fromkeys(lab for _, lab, _ in lines))
    for cell, lab, color in lines:
        lr_width = 1.0 + 2.2 * (len(order) - 1 - order.index(lab)) / max(len(order) - 1, 1)
        part = mean[mean["cell"] == cell]
        for j, dom in enumerate(domains):
            for ax, split, metric in ((axes[0][j], dom, "loss"), (axes[1][j], "train", "lr")):
                line = part[(part["split"] == split) & (part["metric"] == metric)].sort_values("tokens")
                if line.empty:
                    continue
                first = (id(ax), lab) not in drawn
                drawn.add((id(ax), lab))
                # A series measured once (e.g. a domain evaluated only at the end of a reused stage) is a marker.
                marker = "o" if len(line) == 1 else None
                ax.plot(line["tokens"], line["value"], color=color, marker=marker, label=lab if first else None,
                        linestyle="--" if cell in dashed else "-",
                        linewidth=lr_width if metric == "lr" else None)  # fmt: skip
                band = line[line["n"] >= 2]
                if not band.empty:
                    ax.fill_between(band["tokens"], band["value"] - band["std"], band["value"] + band["std"],
                                    color=color, alpha=0.2, linewidth=0, label=style.SEED_BARS)  # fmt: skip


def label_axes(axes, runs: pd.DataFrame, domains: list[str]) -> None:
    """Titles, units, and dotted stage boundaries of the stages in ``runs``."""
    for tokens in _boundaries(runs):
        for ax in (a for row in axes for a in row):
            ax.axvline(tokens, **style.BOUNDARY)
    for j, dom in enumerate(domains):
        axes[0][j].set_title(f"validation loss: {dom}")
        axes[0][j].set_ylabel("loss (nats/token)")
        axes[1][j].set_ylabel("learning rate (applied)")
        axes[1][j].set_xlabel("tokens (cumulative)")
        axes[1][j].xaxis.set_major_formatter(EngFormatter())
        axes[1][j].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))


def _boundaries(runs: pd.DataFrame) -> list[int]:
    """Token positions where a stage with a parent starts (= cumulative minus stage tokens)."""
    child = runs[runs["parent_stage"].notna()].dropna(subset=["cumulative_tokens", "stage_tokens"])
    return sorted(set((child["cumulative_tokens"] - child["stage_tokens"]).astype("int64")))


def shifts_present(results_dir: Path, selection: groups.Selection = SELECTION) -> list[str]:
    """The shifts (weak, then strong) that have continual stages in ``selection``."""
    runs = data.runs_table(results_dir, NAME)
    cont = groups.select(runs, selection, roles=["continual"])
    have = [s for s in SHIFTS if (cont["shift"] == s).any()]
    if not have:
        data.require(cont.iloc[0:0], f"runs with role 'continual' and shift weak/strong in runs.csv for "
                     f"{dict(selection)}", NAME)  # fmt: skip
    return have


def _select(results_dir: Path, shift: str, selection: groups.Selection):
    """(continual stages of one shift, those stages, their parents and the union stages of their runs,
    annotated runs, curves).

    Schedule variants only, as in paper 1 Fig. 4: the replay-free stages if there are any.
    """
    runs = data.runs_table(results_dir, NAME)
    curves = data.load(results_dir, "curves", NAME)
    cont = groups.select(runs, selection, roles=["continual"])
    cont = data.require(cont[cont["shift"] == shift], f"continual runs with shift {shift!r}", NAME)
    have = set(data.stage_curves(curves, runs)["key"])
    cont = data.require(cont[groups.content_key(cont).isin(have)],
                        f"curves rows for the continual stages with shift {shift!r}", NAME)  # fmt: skip
    no_replay = cont[cont["replay_ratio"].fillna(0.0) == 0.0]
    cont = no_replay if not no_replay.empty else cont
    # The parents too, so the jump at the stage boundary (re-warming, the shift) is visible, and the union
    # baseline of the same runs (same data, same total tokens) as the curve to reach.
    members = groups.dedupe(pd.concat([data.parents(cont, runs), cont, data.run_unions(cont, runs)], ignore_index=True))
    return cont, members, runs, curves


def _cells(members: pd.DataFrame) -> pd.DataFrame:
    cells = groups.aggregate(members, [])
    names = data.role_names(cells)
    # A preset's variant names its cell better than a list of factors ("strong-rewarm-0.002"), where the
    # variants tell the continual cells apart.
    cont = (cells["role"] == "continual").to_numpy()
    variants = cells["label_variant"] if "label_variant" in cells else pd.Series(pd.NA, index=cells.index)
    if cont.any() and variants[cont].notna().all() and variants[cont].nunique() == cont.sum():
        names = [str(v) if c else n for v, c, n in zip(variants, cont, names)]
    # Named from the naming table where that tells every cell apart ("CPT re-warm to η_max 0.002"), in its
    # fixed order (pre-trained, CPT runs by key, union), so legends are sorted the same in every figure.
    keys = [data.strategy_key(r) for _, r in cells.iterrows()]
    if len(set(keys)) == len(keys):
        names = [style.strategy(k)[0] for k in keys]
    cells["key"] = keys
    cells["name"] = [data.with_n(t, [n]) for t, n in zip(names, cells["n"])]
    rank = {"pretrain": 0, "union": 2, "new_only": 3}
    cells["_rank"] = [(rank.get(k, 1), k) for k in keys]
    return cells.sort_values("_rank", kind="mergesort").drop(columns="_rank").reset_index(drop=True)


def frame(results_dir: Path, shift: str | None = None, selection: groups.Selection = SELECTION) -> pd.DataFrame:
    """The lines drawn for one shift (default: the first present): one row per cell (continual stages, their
    parents, their union baseline) with ``name`` (legend, with n) and ``n``."""
    shift = shift or shifts_present(results_dir, selection)[0]
    return _cells(_select(results_dir, shift, selection)[1])


@style.styled
def make(results_dir: Path, shift: str | None = None, selection: groups.Selection = SELECTION) -> Figure:
    """Loss/LR curves of the continual stages of each shift present (or of ``shift`` only), a block of rows each."""
    shifts = [shift] if shift else shifts_present(results_dir, selection)
    fig, axes = style.new_figure(2 * len(shifts), 2, sharex="col", height_ratios=[2, 1] * len(shifts))
    fig.set_size_inches(style.PANEL_W * 2.2, style.PANEL_H * 1.9 * len(shifts))
    for b, sh in enumerate(shifts):
        cont, members, runs, curves = _select(results_dir, sh, selection)
        block = axes[2 * b : 2 * b + 2]
        cells = _cells(members)
        domains = [cont["old_domain"].dropna().iloc[0], cont["new_domain"].dropna().iloc[0]]
        # One colour per variant in every block: keyed by the name without its shift ("rewarm-0.002 (n=3)").
        colors = style.series_colors(cells["key"], cells["name"])
        mean = data.from_boundary(data.cell_curves(curves, runs, members), cells)
        union = list(cells.loc[cells["role"] == "union", "cell"])
        draw_curves(block, mean, [(c, lab, colors[lab]) for c, lab in zip(cells["cell"], cells["name"])], domains,
                    dashed=union)  # fmt: skip
        label_axes(block, members, domains)
        for ax in block[0]:
            ax.set_title(f"{sh} shift: {ax.get_title()}")
        block[0][1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("Continual pre-training: lines = mean over seeds, band ± std where n ≥ 2 (n in legend); "
                 "union dashed", fontsize=9)  # fmt: skip
    return fig
