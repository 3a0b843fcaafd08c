"""(c) Continual vs union baseline: final losses, compute used, and benchmark average if evaluated (paper 1 Fig. 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from cpt_experiments.errors import DataError
from cpt_experiments.figures import data, style
from cpt_experiments.results import groups

NAME = "union_baseline"
#: Experiments with a union baseline and the stages compared with it (conf/experiment/{cpt,quickstart}.yaml).
SELECTION: groups.Selection = {
    "cpt": ("continual", "union"),
    "quickstart": ("de_replay0", "de_replay25", "union"),
    "paper1_final": ("continual", "union"),  # conf/experiment/paper1/final.yaml (paper 1, E4)
}
VALUES = ("old_loss", "new_loss", "avg")


def _bench(results_dir: Path) -> pd.DataFrame | None:
    """Benchmark score per stage content (``stage_hash``, rows) and task (columns), or None without score rows.

    Keyed by content so a stage evaluated under one run counts for every run that reuses it; tasks are
    never averaged together (each has its own chance level).
    """
    try:
        scores = data.benchmark_scores(data.load(results_dir, "evals", NAME))
    except DataError:
        return None
    if scores.empty:
        return None
    hashes = data.load(results_dir, "runs", NAME).set_index(["run_id", "stage"])["stage_hash"]
    scores = scores.assign(stage_hash=[hashes.get(k) for k in zip(scores["run_id"], scores["stage"])])
    return scores.groupby(["stage_hash", "task"])["value"].mean().unstack("task")  # one score per stage and task


def frame(results_dir: Path, selection: groups.Selection = SELECTION, metric: str = "loss") -> pd.DataFrame:
    """One row per cell drawn: ``name`` (bar label), role, shift, tokens, mean/``_std``/``_n`` of VALUES (final ``metric``), ``n``.

    Union stages and the continual stages after pre-training with a union baseline's shift, from
    ``selection`` only; each stage once (``stage_hash``), seeds pooled per cell (``groups``), so
    an η_max sweep under one variant name is several bars, not one bar with its spread.
    ``bench:<task>`` is the stage's score on each benchmark (NaN where not evaluated); ``key`` its strategy.
    """
    table = groups.select(data.stage_table(results_dir, NAME, metric), selection)
    runs = data.load(results_dir, "runs", NAME)
    union = data.require(table[table["role"] == "union"], "stages with role 'union' in runs.csv", NAME)
    cont = table[(table["role"] == "continual") & table["shift"].isin(union["shift"].unique())]
    # Two-dataset comparisons only (a stage continued from pre-training).
    cont = cont[data.follows_pretraining(cont, runs)]
    data.require(cont, f"continual stages after pre-training with a union baseline's shift "
                 f"({sorted(union['shift'].unique())})", NAME)  # fmt: skip
    both = pd.concat([union, cont], ignore_index=True)
    bench = _bench(results_dir)
    tasks = [] if bench is None else [f"bench:{t}" for t in bench.columns]
    for t in tasks:
        col = bench[t.removeprefix("bench:")]
        both[t] = [col.get(h, np.nan) for h in both["stage_hash"]]
    stats = groups.aggregate(both, [*VALUES, *tasks])
    order = ["shift", "role", "schedule", "eta_max", "replay_ratio", "chain_corpora"]
    stats = stats.sort_values(order, ascending=[True, False, True, True, True, True], na_position="first")
    stats = stats.reset_index(drop=True)
    stats["key"] = [data.strategy_key(r) for _, r in stats.iterrows()]
    labels = [f"{sh}: {style.strategy(k)[0]}" for sh, k in zip(stats["shift"], stats["key"])]
    if len(set(labels)) < len(labels):  # two cells one strategy (e.g. an η_max sweep): name what differs
        labels = data.comparison_names(stats)
    stats["name"] = [data.with_n(lab, [n]) for lab, n in zip(labels, stats["n"])]
    return stats


def _bars(ax, y, values, std, n, **kw) -> None:
    """Horizontal bars of the means; ± std bars only for the cells with n ≥ 2 seeds."""
    ax.barh(y, values, **kw)
    many = np.asarray(n) >= 2
    if many.any():
        ax.errorbar(np.asarray(values, dtype=float)[many], np.asarray(y)[many],
                    xerr=np.asarray(std, dtype=float)[many], fmt="none", ecolor="#333333", capsize=2,
                    label=style.SEED_BARS)  # fmt: skip


@style.styled
def make(results_dir: Path, selection: groups.Selection = SELECTION) -> Figure:
    """Grouped bars of final loss (old/new/AVG, nats as the claims table), stacked token bars (pre-training +
    this stage, the stage in its strategy's colour) and, where evaluated, each benchmark's accuracy (chance line)."""
    models = frame(results_dir, selection, "loss")
    tasks = [
        c.removeprefix("bench:") for c in models.columns if c.startswith("bench:") and not c.endswith(("_std", "_n"))
    ]
    tasks = [t for t in tasks if models[f"bench:{t}_n"].gt(0).any()]
    ncols = 3 if tasks else 2
    fig, axes = style.new_figure(1, ncols, sharey=True)
    fig.set_size_inches(style.PANEL_W * ncols * 1.2, max(style.PANEL_H, 0.3 * len(models) + 1.6))
    y = np.arange(len(models))
    ax = axes[0][0]
    for k, (col, name) in enumerate((("old_loss", "D0 (old)"), ("new_loss", "D1 (new)"), ("avg", "AVG"))):
        _bars(ax, y + (k - 1) * 0.27, models[col], models[f"{col}_std"], models[f"{col}_n"], height=0.27,
              label=name, color=style.CYCLE[k + 6])  # fmt: skip
    lo = np.nanmin(models[["old_loss", "new_loss", "avg"]].to_numpy())
    ax.set_xlim(left=0.9 * lo)
    ax.set_yticks(y, models["name"])
    ax.set_xlabel("final validation loss (nats/token)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, fontsize=7, frameon=False)
    ax = axes[0][1]
    tokens = models[["stage_tokens", "cumulative_tokens"]].astype("float64")
    pre = (tokens["cumulative_tokens"] - tokens["stage_tokens"]).clip(lower=0)
    ax.barh(y, pre, color="#dddddd", hatch="//", edgecolor="#aaaaaa", label="pre-training (already paid)")
    ax.barh(y, tokens["stage_tokens"], left=pre, color=[style.strategy(k)[1] for k in models["key"]],
            label="_stage")  # fmt: skip
    ax.set_xlabel("tokens trained (bar colour: the model's)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=7, frameon=False)
    ax.xaxis.set_major_formatter(EngFormatter())
    if tasks:
        ax = axes[0][2]
        h = 0.8 / len(tasks)
        for k, t in enumerate(tasks):
            _bars(ax, y + (k - (len(tasks) - 1) / 2) * h, models[f"bench:{t}"], models[f"bench:{t}_std"],
                  models[f"bench:{t}_n"], height=h, color=style.CYCLE[k + 4], label=t.removeprefix("cpt_"))  # fmt: skip
        ax.axvline(0.5, color="#d62728", linestyle="--", linewidth=1.0, label="chance (0.5)")
        values = models[[f"bench:{t}" for t in tasks]].to_numpy(dtype=float)
        ax.set_xlim(min(0.45, np.nanmin(values) - 0.03), np.nanmax(values) + 0.03)
        ax.set_xlabel("minimal-pair accuracy (evals.csv)")
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, fontsize=7, frameon=False)
    fig.suptitle(f"Continual pre-training vs union baseline: {style.SEED_NOTE}", fontsize=9)
    return fig
