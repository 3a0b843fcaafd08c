"""(b) Final old / new / AVG validation bits per byte (loss where bpb was not logged) against replay ratio,
one line per shift, the union baseline of each shift as a dashed reference line (paper 1 Table 2)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from cpt_experiments.figures import MissingFigureData, data, paper1_claims, style
from cpt_experiments.results import groups, labels, metrics

NAME = "replay_sweep"
#: The sweep's rows: stage ``continual`` of experiment ``cpt`` (``replay.ratio`` swept, see conf/experiment/cpt.yaml)
#: and of paper 1's replay preset (conf/experiment/paper1/replay.yaml).
SELECTION: groups.Selection = {"cpt": ("continual",), "paper1_replay": ("continual",)}
VALUES = ("old_loss", "new_loss", "avg")
#: Factors that move along a series' x axis (replay adds the old corpus and sets the mode), not between series.
ALONG_X = ("replay_ratio", "replay_mode", "shift")


def frame(results_dir: Path, selection: groups.Selection = SELECTION, metric: str = "loss") -> pd.DataFrame:
    """The points the figure draws: one row per cell, with ``series``, ``replay_ratio``, mean/``_std``/``n`` of VALUES
    (final ``metric``: nats/token or bits per byte) and ``union_<v>`` (the series' union baseline, NaN if none).

    Continual stages of ``selection`` with shift weak/strong, at the schedule and η_max of the
    replayed stages (a replay sweep varies replay only), each stage once, seeds pooled per cell
    (``groups.aggregate``). ``series`` is the shift, plus every other factor that differs between
    cells of one shift (e.g. the corpus that filled a role), so different data never share a line.
    """
    table = data.stage_table(results_dir, NAME, metric)
    cont = groups.select(table, selection, roles=["continual"])
    cont = cont[cont["shift"].isin(["weak", "strong"])]
    cont = cont.assign(replay_ratio=cont["replay_ratio"].fillna(0.0))
    data.require(
        cont, f"continual stages of {dict(selection)} with shift weak/strong and final validation losses", NAME
    )
    replayed = data.require(cont[cont["replay_ratio"] > 0], "continual stages with replay_ratio > 0 in runs.csv", NAME)
    cont = cont[cont["eta_max"].isin(replayed["eta_max"].dropna().unique()) | cont["eta_max"].isna()]
    cont = cont[cont["schedule"].isin(replayed["schedule"].dropna().unique()) | cont["schedule"].isna()]
    stats = groups.aggregate(cont, list(VALUES))
    series = []
    for _, part in stats.groupby("shift", sort=True):
        extra = [c for c in labels.varying(part) if c not in ALONG_X]
        for i, row in part.iterrows():
            series.append((i, f"{row['shift']} shift" + (f", {labels.describe(row, extra, part)}" if extra else "")))
    stats = stats.assign(series=pd.Series(dict(series)))
    clash = stats[stats.duplicated(["series", "replay_ratio"], keep=False)]
    if not clash.empty:
        raise MissingFigureData(
            f"{NAME}: cells {list(clash['cell'].str[:60])} differ only through a parent stage; select one"
        )
    if not (stats.groupby("series")["replay_ratio"].nunique() >= 2).any():
        data.require(stats.iloc[0:0], "shift with at least two replay ratios", NAME)
    # The union baseline of each cell's data (metrics.union_gap matches shift, size and the chain's corpora).
    gaps = metrics.union_gap(table[(table["role"] == "union") | table["run_id"].isin(set(cont["run_id"]))])
    for v in VALUES:
        col = {"old_loss": "gap_old", "new_loss": "gap_new", "avg": "gap_avg"}[v]
        per_stage = cont.join(gaps[[col]], on=["run_id", "stage"])
        ref = (per_stage[v] - per_stage[col]).groupby(per_stage["cell"]).mean()
        stats[f"union_{v}"] = stats["cell"].map(ref)
    return stats.sort_values(["series", "replay_ratio"]).reset_index(drop=True)


@style.styled
def make(results_dir: Path, selection: groups.Selection = SELECTION) -> Figure:
    """Mean over seeds per (series, replay ratio); ± std bars only for points with ≥ 2 seeds (see ``frame``);
    bits per byte where logged (German and English share no nats axis), the union baseline dashed."""
    metric = data.best_metric(results_dir, NAME)
    stats = frame(results_dir, selection, metric)
    ct = paper1_claims.claim_rows(results_dir)
    gap = ct is not None and ct["group"].str.endswith("5-union").any()
    fig, axes = style.new_figure(1, 4 if gap else 3)
    fig.set_size_inches(style.PANEL_W * (4.2 if gap else 3.2), style.PANEL_H * 1.3)
    colors = style.palette(stats["series"])
    ticks = sorted(set(100 * stats["replay_ratio"]))
    for ax, col, title in zip(axes[0][:3], VALUES, ("old domain", "new domain", "AVG")):
        for series, part in stats.groupby("series", sort=True):
            style.seed_points(ax, 100 * part["replay_ratio"], part[col], part["n"], yerr=part[f"{col}_std"],
                              color=colors[series], label=data.with_n(series, part["n"]))  # fmt: skip
            union = part[f"union_{col}"].dropna()
            if not union.empty:
                ax.axhline(union.mean(), color=colors[series], linestyle="--", linewidth=1.0,
                           label=f"union, {series}")  # fmt: skip
        ax.set_title(f"final {metric}: {title}")
        ax.set_xlabel("replay (% of tokens)")
        # symlog: 0 and 0.5% stay readable beside 50%; ticks at the swept ratios, in plain numbers.
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=7)
        ax.minorticks_off()
        ax.set_xlim(-0.3, 1.2 * max(ticks))
    axes[0][0].set_ylabel(data.UNITS[metric])
    if gap:  # claim 5 as the claims table has it: a difference in nats, beside the paper's (★)
        paper1_claims.claim_panel(axes[0][3], ct, "AVG − union (nats), ★ paper", ("5-union",), "ratio")
    fig.legend(*axes[0][2].get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize=7)
    fig.suptitle(f"Replay sweep: {style.SEED_NOTE}", fontsize=9)
    return fig
