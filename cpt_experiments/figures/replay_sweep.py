"""(b) Final old / new / AVG validation loss against replay ratio, one line per shift (paper 1 Table 2)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from cpt_experiments.figures import data, style

NAME = "replay_sweep"


@style.styled
def make(results_dir: Path) -> Figure:
    """Mean ± std over seeds of the continual stages' final losses per (shift, replay_ratio).

    Needs continual stages with at least two distinct ``replay_ratio`` values for some shift.
    """
    table = data.stage_table(results_dir, NAME)
    cont = table[(table["role"] == "continual") & table["shift"].isin(["weak", "strong"])]
    cont = cont.assign(replay_ratio=cont["replay_ratio"].fillna(0.0))
    data.require(cont, "continual stages with shift weak/strong and final validation losses", NAME)
    # A replay sweep varies replay at one schedule: keep the η_max shared by the replay>0 runs.
    replayed = cont[cont["replay_ratio"] > 0]
    data.require(replayed, "continual stages with replay_ratio > 0 in runs.csv", NAME)
    cont = cont[cont["eta_max"].isin(replayed["eta_max"].dropna().unique()) | cont["eta_max"].isna()]
    cont = cont[cont["schedule"].isin(replayed["schedule"].dropna().unique()) | cont["schedule"].isna()]
    stats = data.mean_std(cont, ["shift", "replay_ratio"], ["old_loss", "new_loss", "avg"])
    counts = stats.groupby("shift")["replay_ratio"].nunique()
    if not (counts >= 2).any():
        data.require(stats.iloc[0:0], "shift with at least two replay ratios", NAME)
    fig, axes = style.new_figure(1, 3, sharex=True)
    colors = style.palette(stats["shift"])
    for ax, col, title in zip(axes[0], ("old_loss", "new_loss", "avg"), ("old domain", "new domain", "AVG")):
        for shift, part in stats.groupby("shift"):
            part = part.sort_values("replay_ratio")
            ax.errorbar(100 * part["replay_ratio"], part[col], yerr=part[f"{col}_std"], marker="o", capsize=2,
                        color=colors[shift], label=f"{shift} shift")  # fmt: skip
        ax.set_title(f"final loss: {title}")
        ax.set_xlabel("replay (% of tokens)")
        ax.set_xscale("symlog", linthresh=1.0)
    axes[0][0].set_ylabel("loss (nats/token)")
    axes[0][-1].legend()
    return fig
