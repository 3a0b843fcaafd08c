"""(a) Validation loss per domain over cumulative tokens for schedule variants, logged LR beneath.

Mirrors paper 1 Figs. 3-4: one column per validation domain (old, new), one line per cell (mean
over its seeds, a ± std band where n ≥ 2, n in the legend), the union baseline's final loss
dashed, stage boundaries dotted; the bottom row is the LR the callback applied (curves metric
``lr``, split ``train``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from cpt_experiments.figures import data, style
from cpt_experiments.results import groups, metrics

NAME = "loss_curves"
#: Continual stages drawn (conf/experiment/{cpt,quickstart}.yaml); their parents are drawn too.
SELECTION: groups.Selection = {"cpt": ("continual",), "quickstart": ("de_replay0", "de_replay25")}


def draw_curves(axes, mean: pd.DataFrame, lines: Sequence[tuple[str, str, str]], domains: list[str]) -> None:
    """Loss per domain (top row) and logged LR (bottom row) of each line, from ``data.cell_curves`` output.

    ``lines`` are (cell, legend label, colour); cells sharing a label are drawn as one legend entry
    (a chain of stages). Where n ≥ 2 seeds reached a point, a ± std band is shaded.
    """
    drawn: set[tuple[int, str]] = set()
    for cell, lab, color in lines:
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
                ax.plot(line["tokens"], line["value"], color=color, marker=marker, label=lab if first else None)
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


def _select(results_dir: Path, shift: str | None, selection: groups.Selection):
    """(continual stages of one shift, those stages and their parents, the shift, annotated runs, curves).

    Schedule variants only, as in paper 1 Fig. 4: the replay-free stages if there are any.
    """
    runs = data.runs_table(results_dir, NAME)
    curves = data.load(results_dir, "curves", NAME)
    cont = groups.select(runs, selection, roles=["continual"])
    cont = cont[cont["shift"].isin(["weak", "strong"])]
    data.require(cont, f"runs with role 'continual' and shift weak/strong in runs.csv for {dict(selection)}", NAME)
    shift = shift or next(s for s in ("weak", "strong") if (cont["shift"] == s).any())
    cont = data.require(cont[cont["shift"] == shift], f"continual runs with shift {shift!r}", NAME)
    have = set(data.stage_curves(curves, runs)["key"])
    cont = data.require(cont[data.stage_key(cont).isin(have)],
                        f"curves rows for the continual stages with shift {shift!r}", NAME)  # fmt: skip
    no_replay = cont[cont["replay_ratio"].fillna(0.0) == 0.0]
    cont = no_replay if not no_replay.empty else cont
    # The parents too, so the jump at the stage boundary (re-warming, the shift) is visible.
    members = groups.dedupe(pd.concat([data.parents(cont, runs), cont], ignore_index=True))
    return cont, members, shift, runs, curves


def _cells(members: pd.DataFrame) -> pd.DataFrame:
    cells = groups.aggregate(members, [])
    cells["name"] = [data.with_n(t, [n]) for t, n in zip(data.role_names(cells), cells["n"])]
    return cells


def frame(results_dir: Path, shift: str | None = None, selection: groups.Selection = SELECTION) -> pd.DataFrame:
    """The lines drawn: one row per cell (continual stages and their parents) with ``name`` (legend, with n) and ``n``."""
    return _cells(_select(results_dir, shift, selection)[1])


@style.styled
def make(results_dir: Path, shift: str | None = None, selection: groups.Selection = SELECTION) -> Figure:
    """Loss/LR curves of the continual stages of one distribution shift (default: weak, else strong)."""
    cont, members, shift, runs, curves = _select(results_dir, shift, selection)
    cells = _cells(members)
    domains = [cont["old_domain"].dropna().iloc[0], cont["new_domain"].dropna().iloc[0]]
    colors = style.palette(cells["name"])
    fig, axes = style.new_figure(2, len(domains), sharex="col", height_ratios=[2, 1])
    mean = data.cell_curves(curves, runs, members)
    draw_curves(axes, mean, [(c, lab, colors[lab]) for c, lab in zip(cells["cell"], cells["name"])], domains)
    label_axes(axes, members, domains)
    # The union baseline of these stages' data (metrics.union_reference: mean over its own seeds).
    ref = metrics.union_reference(data.stage_table(results_dir, NAME))
    if not ref.empty:
        ref = ref[(ref["shift"] == shift) & ref["chain_corpora"].fillna("").isin(set(cont["chain_corpora"].fillna("")))]
    for j, col in enumerate(("old_loss", "new_loss")):
        for k, u in enumerate(ref.itertuples()):
            name = "union (final" + (f", {k + 1}" if len(ref) > 1 else "") + f", {groups.n_text([u.n])})"
            axes[0][j].axhline(getattr(u, col), color=style.FIXED["union"], linestyle="--", label=name)
    style.legend_below(fig, axes[0][0])  # the old domain: every stage is measured there
    fig.suptitle(f"Continual pre-training, {shift} shift: lines = mean over seeds, band ± std where n ≥ 2", fontsize=9)
    return fig
