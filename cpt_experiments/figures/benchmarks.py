"""(g) Benchmark scores per cell (lm-eval rows of evals.csv): mean over seeds, seed std where n ≥ 2, and each
task's chance level dashed, so a score at chance reads as one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from cpt_experiments.figures import data, style
from cpt_experiments.results import groups

NAME = "benchmarks"
#: Every experiment's evaluated stages by default (the cell key keeps experiments apart).
SELECTION: groups.Selection | None = None
ITEM_ERR = {"color": "#888888", "linewidth": 1.0}  # lm-eval's per-item stderr: thin grey, no caps
#: Accuracy of guessing per task (the local ``cpt_`` tasks by their stock name): minimal pairs and two-way
#: choices 0.5, four-way multiple choice 0.25. A task not listed gets no line; add yours here.
CHANCE = {"blimp": 0.5, "multiblimp_de": 0.5, "piqa": 0.5, "winogrande": 0.5, "arc_easy": 0.25, "arc_easy_de": 0.25,
          "arc_challenge": 0.25, "hellaswag": 0.25, "mmlu_de": 0.25, "mmlu": 0.25}  # fmt: skip


def chance(task: str) -> float | None:
    """The chance score of ``task`` (``cpt_blimp`` and ``blimp`` alike), or None if unknown."""
    return CHANCE.get(task.removeprefix("cpt_"))


def frame(results_dir: Path, selection: groups.Selection | None = SELECTION) -> pd.DataFrame:
    """One row per (cell, task) drawn: ``name``, task, metric, ``value`` (mean over seeds), ``value_std``, ``n``, ``stderr``.

    Each evaluated stage counts once (by ``stage_hash``: a stage evaluated under two runs is one
    measurement); seeds are pooled per cell (``groups.aggregate``). ``stderr`` is lm-eval's
    per-item standard error averaged over the cell's seeds (sampling error of the items, not seeds).
    """
    evals = data.benchmark_scores(data.load(results_dir, "evals", NAME))
    data.require(evals, f"benchmark score rows ({', '.join(data.SCORE_METRICS)}) in evals.csv", NAME)
    runs = data.runs_table(results_dir, NAME)
    info = runs.drop(columns=["checkpoint"]).set_index(["run_id", "stage"])
    scored = groups.select(evals.join(info, on=["run_id", "stage"], how="inner"), selection)
    data.require(scored, f"benchmark score rows of stages in runs.csv for {selection}", NAME)
    stats = groups.aggregate(scored, ["value", "stderr"], by=["task"])
    cells = stats.drop_duplicates("cell").reset_index(drop=True)
    names = dict(zip(cells["cell"], data.comparison_names(cells.assign(shift=cells["shift"].fillna("none")))))
    n = stats.groupby("cell")["n"].agg(list)
    stats["name"] = [data.with_n(names[c], n[c]) for c in stats["cell"]]
    return stats


@style.styled
def make(results_dir: Path, selection: groups.Selection | None = SELECTION) -> Figure:
    """Grouped bars: tasks on x, one bar per cell; black ± std over seeds where n ≥ 2, grey lm-eval item stderr."""
    stats = frame(results_dir, selection)
    tasks = sorted(stats["task"].unique())
    labels = sorted(stats["name"].unique())
    colors = style.palette(labels)
    fig, axes = style.new_figure(1, 1)
    fig.set_size_inches(max(style.PANEL_W, 0.5 * len(tasks) * len(labels) + 1.5), style.PANEL_H * 1.6)
    ax = axes[0][0]
    width = 0.8 / len(labels)
    for k, lab in enumerate(labels):
        part = stats[stats["name"] == lab].set_index("task").reindex(tasks)
        x = np.arange(len(tasks)) + (k - (len(labels) - 1) / 2) * width
        ax.bar(x, part["value"], width=width, color=colors[lab], label=lab)
        # The item stderr sits slightly left of centre so it never hides the seed bar.
        ax.vlines(x - width / 4, part["value"] - part["stderr"], part["value"] + part["stderr"], **ITEM_ERR)
        many = (part["n"] >= 2).to_numpy()
        if many.any():
            ax.errorbar(x[many], part["value"][many], yerr=part["value_std"][many], fmt="none", ecolor="black",
                        capsize=3, label=style.SEED_BARS)  # fmt: skip
    for i, task in enumerate(tasks):
        level = chance(task)
        if level is not None:
            ax.hlines(level, i - 0.45, i + 0.45, colors="#d62728", linestyles="--", linewidth=1.0, label="_chance")
    metric_of = stats.groupby("task")["metric"].first()
    ax.set_xticks(np.arange(len(tasks)), [f"{t}\n({metric_of[t]})" for t in tasks])
    ax.set_ylabel("score (mean over seeds)")
    ax.set_xlabel("task (metric)")
    ax.set_title("Benchmark scores per cell")
    handles, names = ax.get_legend_handles_labels()
    handles += [Line2D([], [], **ITEM_ERR), Line2D([], [], color="black", marker="_", markersize=8),
                Line2D([], [], color="#d62728", linestyle="--", linewidth=1.0)]  # fmt: skip
    names += ["lm-eval stderr (items)", "± std over seeds (n ≥ 2 only)", "chance"]
    fig.legend(handles, names, loc="outside lower center", ncols=2, fontsize=7)
    return fig
