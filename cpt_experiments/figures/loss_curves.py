"""(a) Validation loss per domain over cumulative tokens for schedule variants, logged LR beneath.

Mirrors paper 1 Figs. 3-4: one column per validation domain (old, new), one line per variant
(every seed drawn), the union baseline's final loss dashed, stage boundaries dotted; the
bottom row is the LR the callback applied (curves metric ``lr``, split ``train``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from cpt_experiments.figures import data, style

NAME = "loss_curves"


def draw_curves(fig: Figure, axes, curves: pd.DataFrame, runs: pd.DataFrame, domains: list[str]) -> None:
    """Loss per domain (top row) and logged LR (bottom row) for every stage in ``runs``.

    ``runs`` holds the selected (run_id, stage) rows; ``axes`` is a 2 × len(domains) array.
    """
    labels = {(r.run_id, r.stage): data.label(pd.Series(r._asdict())) for r in runs.itertuples()}
    colors = style.palette(labels.values())
    sel = curves.merge(runs[["run_id", "stage"]], on=["run_id", "stage"])
    drawn: set[tuple[int, str]] = set()
    for (rid, stage), part in sel.groupby(["run_id", "stage"], sort=True):
        lab = labels[(rid, stage)]
        for j, dom in enumerate(domains):
            for ax, split, metric in ((axes[0][j], dom, "loss"), (axes[1][j], "train", "lr")):
                line = part[(part["split"] == split) & (part["metric"] == metric)].sort_values("tokens")
                if line.empty:
                    continue
                first = (id(ax), lab) not in drawn
                drawn.add((id(ax), lab))
                ax.plot(line["tokens"], line["value"], color=colors[lab], label=lab if first else None)
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
    axes[0][-1].legend(loc="best")


def _boundaries(runs: pd.DataFrame) -> list[int]:
    """Token positions where a stage with a parent starts (= cumulative minus stage tokens)."""
    child = runs[runs["parent_stage"].notna()].dropna(subset=["cumulative_tokens", "stage_tokens"])
    return sorted(set((child["cumulative_tokens"] - child["stage_tokens"]).astype("int64")))


@style.styled
def make(results_dir: Path, shift: str | None = None) -> Figure:
    """Loss/LR curves of the continual stages of one distribution shift (default: weak, else strong)."""
    runs = data.load(results_dir, "runs", NAME)
    curves = data.load(results_dir, "curves", NAME)
    cont = runs[(runs["role"] == "continual") & runs["shift"].isin(["weak", "strong"])]
    data.require(cont, "runs with role 'continual' and shift weak/strong in runs.csv", NAME)
    shift = shift or next(s for s in ("weak", "strong") if (cont["shift"] == s).any())
    cont = data.require(cont[cont["shift"] == shift], f"continual runs with shift {shift!r}", NAME)
    have = curves.set_index(["run_id", "stage"]).index.unique()
    cont = data.require(cont[cont.set_index(["run_id", "stage"]).index.isin(have)],
                        f"curves rows for the continual stages with shift {shift!r}", NAME)  # fmt: skip
    no_replay = cont[cont["replay_ratio"].fillna(0.0) == 0.0]
    cont = no_replay if not no_replay.empty else cont  # schedule variants only, as in paper 1 Fig. 4
    domains = [cont["old_domain"].dropna().iloc[0], cont["new_domain"].dropna().iloc[0]]
    # The parents' curves too, so the jump at the stage boundary (re-warming, the shift) is visible.
    parents = runs.merge(
        cont[["run_id", "parent_stage"]].dropna().rename(columns={"parent_stage": "stage"}), on=["run_id", "stage"]
    ).drop_duplicates(subset=["stage_hash"])
    fig, axes = style.new_figure(2, len(domains), sharex="col", height_ratios=[2, 1])
    draw_curves(fig, axes, curves, pd.concat([parents, cont], ignore_index=True), domains)
    union = data.stage_table(results_dir, NAME)
    union = union[(union["role"] == "union") & (union["shift"] == shift)]
    for j, col in enumerate(("old_loss", "new_loss")):
        if not union.empty and union[col].notna().any():
            axes[0][j].axhline(union[col].mean(), color=style.FIXED["union"], linestyle="--", label="union (final)")
    axes[0][-1].legend(loc="best")
    fig.suptitle(f"Continual pre-training, {shift} shift")
    return fig
