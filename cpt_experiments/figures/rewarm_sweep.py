"""(d) Re-warming η_max sweep: adaptation against forgetting, one point per η_max, with the constant-η_min
schedule and the union baseline as single points (paper 1 Fig. 4 and its LR-schedule table)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from cpt_experiments.figures import data, paper1_claims, style
from cpt_experiments.results import groups, labels

NAME = "rewarm_sweep"
#: The sweep's rows: stage ``continual`` of experiment ``cpt`` (``schedules.continual.max_lr`` swept) and of
#: paper 1's re-warming preset (conf/experiment/paper1/rewarm.yaml: η_max swept, and the constant schedule).
SELECTION: groups.Selection = {"cpt": ("continual",), "paper1_rewarm": ("continual",)}
#: Schedules drawn as a single point beside the sweep (no η_max to sweep).
SINGLE = ("constant",)
VALUES = ("forgetting", "adaptation")
#: Factors that move along a series (the swept LR), not between series.
ALONG = ("eta_max", "shift", "schedule", "eta_min", "eta_const", "warmup_frac")  # the last three come with the schedule


def frame(results_dir: Path, selection: groups.Selection = SELECTION) -> pd.DataFrame:
    """The points drawn: one row per cell with ``series``, ``eta_max``, mean/``_std``/``n`` of forgetting and adaptation.

    forgetting = old_loss − pre_old_loss, adaptation = pre_new_loss − new_loss (metrics.py), per
    stage, then mean ± std over the seeds of each cell (``groups.aggregate``; each stage once).
    Only replay-free continual stages straight after pre-training (paper 1 Fig. 4), shift
    weak/strong; ``series`` = schedule plus any other factor that differs within the shift; a
    series needs at least two distinct η_max, except the constant schedule (one point). The union
    baseline of the same runs is a point too (series "union": its loss against the same
    pre-trained model, though it never continued from it).
    """
    table = data.stage_table(results_dir, NAME)
    runs = data.load(results_dir, "runs", NAME)
    cont = groups.select(table, selection, roles=["continual"])
    cont = cont[cont["shift"].isin(["weak", "strong"]) & (cont["replay_ratio"].fillna(0.0) == 0.0)]
    cont = cont[data.follows_pretraining(cont, runs)].dropna(subset=["eta_max"])
    cont = cont.assign(
        forgetting=cont["old_loss"] - cont["pre_old_loss"], adaptation=cont["pre_new_loss"] - cont["new_loss"]
    ).dropna(subset=list(VALUES))
    data.require(cont, "replay-free continual stages (shift weak/strong) with eta_max and pre-training losses", NAME)
    stats = groups.aggregate(cont, list(VALUES))
    series = {}
    for _, part in stats.groupby("shift", sort=True):
        extra = [c for c in labels.varying(part) if c not in ALONG]
        for i, row in part.iterrows():
            name = str(row["schedule"]) if pd.notna(row["schedule"]) else "?"
            name = "constant η_min" if name in SINGLE else name
            series[i] = name + (f", {labels.describe(row, extra, part)}" if extra else "")
    stats = stats.assign(series=pd.Series(series))
    swept = stats.groupby(["shift", "series"])["eta_max"].transform("nunique") >= 2
    data.require(stats[swept], "eta_max sweep (need >= 2 distinct eta_max for one schedule among replay-free "
                 "continual stages that follow pre-training)", NAME)  # fmt: skip
    shifts = set(stats.loc[swept, "shift"])
    single = stats["schedule"].isin(SINGLE) & stats["shift"].isin(shifts) & ~swept
    keep = [stats[swept | single], _union_points(table, cont)]
    out = pd.concat([k for k in keep if not k.empty], ignore_index=True)
    return out[out["shift"].isin(shifts)].sort_values(["shift", "series", "eta_max"]).reset_index(drop=True)


def _union_points(table: pd.DataFrame, cont: pd.DataFrame) -> pd.DataFrame:
    """The union stages of the runs of ``cont``: forgetting = U_old − pre_old, adaptation = pre_new − U_new
    against the pre-trained model of the same run, mean ± std over seeds (series "union")."""
    pre = cont[["run_id", "pre_old_loss", "pre_new_loss"]].drop_duplicates("run_id")
    union = data.run_unions(cont, table).merge(pre, on="run_id", suffixes=("_own", ""))
    if union.empty:
        return union
    union = union.assign(forgetting=union["old_loss"] - union["pre_old_loss"],
                         adaptation=union["pre_new_loss"] - union["new_loss"])  # fmt: skip
    stats = groups.aggregate(union, list(VALUES))
    return stats.assign(series="union", eta_max=float("nan"))


#: Legend names of the sweep's series (schedule names are config strings).
SERIES_NAMES = {"warmup_cosine": "CPT re-warm + cosine (η_max marked)", "constant η_min": "CPT constant η_min",
                "union": "union (from scratch)"}  # fmt: skip


@style.styled
def make(results_dir: Path, selection: groups.Selection = SELECTION) -> Figure:
    """One panel per shift; per series a line through its η_max points, ± std bars only where n ≥ 2 (see ``frame``)."""
    stats = frame(results_dir, selection)
    shifts = sorted(stats["shift"].unique(), key=lambda s: (s != "weak", s))  # weak first, as in the paper
    ct = paper1_claims.claim_rows(results_dir)
    extra = [] if ct is None else [(t, g) for t, g in (("(2) forgetting steps: old loss, higher − lower η_max",
             "2-forget"), ("(1–2) D1: re-warm − constant η_min", "2-adapt")) if ct["group"].str.endswith(g).any()]  # fmt: skip
    fig, axes = style.new_figure(1, len(shifts) + len(extra))
    fig.set_size_inches(style.PANEL_W * 1.2 * (len(shifts) + len(extra)), style.PANEL_H * 1.4)
    colors = style.palette(stats["series"])
    for ax, shift in zip(axes[0], shifts):
        for series, pts in stats[stats["shift"] == shift].groupby("series", sort=True):
            style.seed_points(ax, pts["forgetting"], pts["adaptation"], pts["n"], xerr=pts["forgetting_std"],
                              yerr=pts["adaptation_std"], color=colors[series],
                              label=data.with_n(SERIES_NAMES.get(series, series), pts["n"]),
                              linestyle="-" if len(pts) > 1 else "none")  # fmt: skip
            for p in pts.itertuples():
                text = "union" if series == "union" else "η_min" if p.schedule in SINGLE else f"η_max={p.eta_max:g}"
                ax.annotate(text, (p.forgetting, p.adaptation), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_title(f"{shift} shift")
        ax.set_xlabel("forgetting: Δ old-domain loss (nats/token)")
        ax.set_ylabel("adaptation: − Δ new-domain loss (nats/token)")
        ax.legend(loc="best", fontsize=7)
    for ax, (title, group) in zip(axes[0][len(shifts) :], extra):  # the claims as differences, ★ the paper's
        paper1_claims.claim_panel(ax, ct, title, (group,), "label")
        ax.legend(fontsize=6, loc="best")
    fig.suptitle(f"Re-warming sweep: {style.SEED_NOTE}", fontsize=9)
    return fig
