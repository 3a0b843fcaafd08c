"""(f) Paper 2: the released model per version against the training cost, PTFS vs CPT variants vs path switching.

Strategies of the cosine family only (the other families: ``path_switching_families``). Panels: final
validation loss (nats/token) and bits per byte per version; cumulative training tokens per version with
each strategy's ratio to PTFS at the last version under both accountings of ``results.ledger``; loss
against cumulative tokens (each strategy a line, each version a point).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from cpt_experiments.errors import DataError
from cpt_experiments.figures import MissingFigureData, data, style
from cpt_experiments.results import ledger, releases

NAME = "path_switching"


def strategy_name(experiment: str, variant: str) -> str:
    """Legend name of a strategy: its variant (ptfs-cosine, cpt_rewarm, ps-cosine-f20), else the experiment."""
    return variant or experiment


def tables(results_dir: Path, figure: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-version table of ``releases.table`` with ``name``, ledger rows under both accountings with ``name``)."""
    runs = data.load(results_dir, "runs", figure)
    curves = data.load(results_dir, "curves", figure)
    try:
        tab = releases.table(releases.released(curves, runs))
        costs = pd.concat(
            [ledger.ledger(runs, accounting=a).assign(accounting=a) for a in ledger.ACCOUNTINGS], ignore_index=True
        )
    except DataError as exc:
        raise MissingFigureData(f"{figure}: {exc}") from None
    tab["name"] = [strategy_name(e, v) for e, v in zip(tab["experiment"], tab["variant"])]
    costs["name"] = [strategy_name(s, v) for s, v in zip(costs["strategy"], costs["variant"])]
    return tab, costs


@style.styled
def make(results_dir: Path) -> Figure:
    tab, costs = tables(results_dir, NAME)
    tab = tab[tab["variant"].map(releases.family) == "cosine"]  # CPT variants count as cosine (their decays)
    costs = costs[costs["name"].isin(set(tab["name"]))]
    if tab.empty:
        raise MissingFigureData(f"{NAME}: no cosine-family strategy in the runs")
    colors = style.palette(tab["name"])
    fig, axes = style.new_figure(2, 2)
    for ax, metric, unit in ((axes[0][0], "loss", "nats/token"), (axes[0][1], "bpb", "bits/byte")):
        for name, part in tab.groupby("name"):
            part = part.sort_values("version")
            style.seed_points(ax, part["version"], part[metric], part["n"], yerr=part[f"{metric}_std"],
                              color=colors[name], label=data.with_n(name, part["n"]))  # fmt: skip
        ax.set_xlabel("version")
        ax.set_ylabel(f"final validation {metric} ({unit})")
        ax.set_xticks(sorted(tab["version"].unique()))
    axes[0][0].set_title("released model per version")
    ax = axes[1][0]
    extra = costs[costs["accounting"] == "extra"]
    replace = costs[costs["accounting"] == "replace"].set_index(["name", "version"])["ratio_to_ptfs"]
    for name, part in extra.groupby("name"):
        part = part.sort_values("version")
        ax.plot(part["version"], part["cumulative_cost"] / 1e6, marker="o", color=colors[name], label=name)
        last = part.iloc[-1]
        ratio = f"{last['ratio_to_ptfs']:.0%}"
        if replace.get((name, last["version"]), last["ratio_to_ptfs"]) != last["ratio_to_ptfs"]:
            ratio += f" / {replace[(name, last['version'])]:.0%}"
        ax.annotate(ratio, (last["version"], last["cumulative_cost"] / 1e6), textcoords="offset points",
                    xytext=(4, 0), fontsize=6, va="center")  # fmt: skip
    ax.set_xlabel("version")
    ax.set_ylabel("cumulative training tokens (M)")
    ax.set_title("cost; label: ratio to PTFS (extra / replace)", fontsize=8)
    ax.set_xticks(sorted(extra["version"].unique()))
    ax = axes[1][1]
    cost = extra.set_index(["name", "version"])["cumulative_cost"]
    for name, part in tab.groupby("name"):
        part = part.sort_values("version")
        x = [cost.get((name, v), float("nan")) / 1e6 for v in part["version"]]
        style.seed_points(ax, x, part["loss"], part["n"], yerr=part["loss_std"], color=colors[name], label=name)
    ax.set_xlabel("cumulative training tokens (M)")
    ax.set_ylabel("final validation loss (nats/token)")
    ax.set_title("loss against cost (a point per version)", fontsize=8)
    style.legend_below(fig, axes[0][0], ncols=3)
    fig.suptitle(f"Paper 2, cosine family: {style.SEED_NOTE}", fontsize=9)
    return fig
