"""(d) Re-warming η_max sweep: adaptation against forgetting, one point per η_max (paper 1 Fig. 4 summary)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from cpt_experiments.figures import data, style

NAME = "rewarm_sweep"


@style.styled
def make(results_dir: Path) -> Figure:
    """Mean over seeds of (forgetting, adaptation) per (shift, schedule, η_max) for replay-free stages.

    forgetting = old_loss − pre_old_loss, adaptation = pre_new_loss − new_loss (metrics.py).
    Needs continual stages without replay with at least two distinct η_max values.
    """
    table = data.stage_table(results_dir, NAME)
    shifted = (table["role"] == "continual") & table["shift"].isin(["weak", "strong"])
    cont = table[shifted & (table["replay_ratio"].fillna(0.0) == 0.0)]
    # Only stages continued straight from pre-training (paper 1 Fig. 4), not later stages of a chain.
    runs = data.load(results_dir, "runs", NAME)
    cont = data.unique_stages(cont[data.follows_pretraining(cont, runs)], runs).dropna(subset=["eta_max"])
    cont = cont.assign(
        forgetting=cont["old_loss"] - cont["pre_old_loss"], adaptation=cont["pre_new_loss"] - cont["new_loss"]
    )
    cont = cont.dropna(subset=["forgetting", "adaptation"])
    data.require(cont, "replay-free continual stages (shift weak/strong) with eta_max and pre-training losses", NAME)
    cont = cont.assign(schedule=cont["schedule"].fillna(""))
    swept = cont.groupby(["shift", "schedule"])["eta_max"].transform("nunique") >= 2
    cont = data.require(cont[swept], "eta_max sweep (need >= 2 distinct eta_max for one schedule among replay-free "
                        "continual stages that follow pre-training)", NAME)  # fmt: skip
    stats = data.mean_std(cont, ["shift", "schedule", "eta_max"], ["forgetting", "adaptation"])
    shifts = sorted(stats["shift"].unique())
    fig, axes = style.new_figure(1, len(shifts))
    colors = style.palette(stats["schedule"])
    for ax, shift in zip(axes[0], shifts):
        part = stats[stats["shift"] == shift].sort_values("eta_max")
        for schedule, pts in part.groupby("schedule"):
            ax.errorbar(pts["forgetting"], pts["adaptation"], xerr=pts["forgetting_std"], yerr=pts["adaptation_std"],
                        marker="o", linestyle="-" if len(pts) > 1 else "none", capsize=2,
                        color=colors[schedule], label=schedule or "?")  # fmt: skip
            for p in pts.itertuples():
                ax.annotate(f"η_max={p.eta_max:g}", (p.forgetting, p.adaptation), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)  # fmt: skip
        ax.set_title(f"{shift} shift")
        ax.set_xlabel("forgetting: Δ old-domain loss (nats/token)")
        ax.set_ylabel("adaptation: − Δ new-domain loss (nats/token)")
        ax.legend(loc="lower right")
    return fig
