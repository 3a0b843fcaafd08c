"""(g) Benchmark scores per cell (lm-eval rows of evals.csv): mean over seeds, seed std where n ≥ 2, and each
task's chance level dashed, so a score at chance reads as one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from cpt_experiments.figures import data, style
from cpt_experiments.results import groups, labels

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


#: Held-out text rows (``cpt_heldout_<role>``): bits per byte, lower is better (a panel of their own).
HELDOUT = ("cpt_heldout_", "bits_per_byte")


def frame(results_dir: Path, selection: groups.Selection | None = SELECTION) -> pd.DataFrame:
    """One row per (cell, task) drawn: ``name``, ``key`` (``style.STRATEGIES``), task, metric, ``value`` (mean over
    seeds), ``value_std``, ``n``, ``stderr``; benchmark scores and the held-out bits per byte.

    Each evaluated stage counts once (by ``stage_hash``: a stage evaluated under two runs is one
    measurement); seeds are pooled per cell (``groups.aggregate``). ``stderr`` is lm-eval's
    per-item standard error averaged over the cell's seeds (sampling error of the items, not seeds).
    """
    evals = data.load(results_dir, "evals", NAME)
    heldout = evals[evals["task"].str.startswith(HELDOUT[0]) & (evals["metric"] == HELDOUT[1])]
    evals = pd.concat([data.benchmark_scores(evals), heldout], ignore_index=True)
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
    stats["key"] = [data.strategy_key(r) for _, r in stats.iterrows()]
    return stats


def _panel(ax, part: pd.DataFrame, keys: list[str], tasks: list[str]) -> None:
    """Grouped bars: tasks on x, one bar per strategy key (its ``style.strategy`` colour), seed and item bars."""
    width = 0.8 / max(len(keys), 1)
    for k, key in enumerate(keys):
        # One bar per task: a strategy measured under two cells here (e.g. a shared stage) shows its most-seeded one.
        rows = part[part["key"] == key].drop_duplicates("task").set_index("task").reindex(tasks)
        label, color, _ = style.strategy(key)
        x = np.arange(len(tasks)) + (k - (len(keys) - 1) / 2) * width
        n = labels.n_text(rows["n"].dropna().astype(int))
        ax.bar(x, rows["value"], width=width, color=color, label=f"{label} ({n})", edgecolor="white", linewidth=0.5)
        # The item stderr sits slightly left of centre so it never hides the seed bar.
        ax.vlines(x - width / 4, rows["value"] - rows["stderr"], rows["value"] + rows["stderr"], **ITEM_ERR)
        many = (rows["n"] >= 2).to_numpy()
        if many.any():
            ax.errorbar(x[many], rows["value"][many], yerr=rows["value_std"][many], fmt="none", ecolor="black",
                        capsize=2, label=style.SEED_BARS)  # fmt: skip
    ax.set_xticks(np.arange(len(tasks)), [t.removeprefix("cpt_") for t in tasks], fontsize=7)


def _order(keys: set[str]) -> list[str]:
    """Strategy keys in a fixed order: pre-trained, CPT by replay ratio, the other CPT runs, union, D1-only."""
    first = [k for k in ("pretrain",) if k in keys]
    replay = sorted((k for k in keys if k.startswith("replay-")), key=lambda k: float(k.split("-")[1]))
    last = [k for k in ("union", "new_only") if k in keys]
    return first + replay + sorted(keys - set(first) - set(replay) - set(last)) + last


@style.styled
def make(results_dir: Path, selection: groups.Selection | None = SELECTION) -> Figure:
    """Per shift: accuracy on the benchmarks (chance dashed; y-range from the scores) and held-out bits per byte."""
    stats = frame(results_dir, selection)
    # A strategy measured twice in one shift (another replay mode, a one-seed extra): the cell with most seeds.
    stats = stats.sort_values("n", ascending=False, kind="mergesort")
    keep = stats.drop_duplicates(["shift", "key", "experiment"])[["cell"]]
    stats = stats[stats["cell"].isin(keep["cell"])]
    shifts = [s for s in ("strong", "weak") if s in set(stats["shift"])] or sorted(set(stats["shift"].dropna()))
    shared = stats[stats["shift"].isna() | (stats["shift"] == "none")]
    kinds = [("accuracy", ~stats["task"].str.startswith(HELDOUT[0])), ("held-out", stats["task"].str.startswith(
        HELDOUT[0]))]  # fmt: skip
    kinds = [(k, m) for k, m in kinds if m.any()]
    fig, axes = style.new_figure(len(shifts), len(kinds))
    fig.set_size_inches(style.PANEL_W * 1.5 * len(kinds), style.PANEL_H * 1.1 * len(shifts) + 1.2)
    for i, shift in enumerate(shifts):
        own = pd.concat([stats[stats["shift"] == shift], shared])
        for j, (kind, mask) in enumerate(kinds):
            ax, part = axes[i][j], own[own.index.isin(stats.index[mask])]
            tasks = sorted(part["task"].unique())
            _panel(ax, part, _order(set(part["key"])), tasks)
            if kind == "accuracy":
                for t, task in enumerate(tasks):
                    level = chance(task)
                    if level is not None:
                        ax.hlines(level, t - 0.45, t + 0.45, colors="#d62728", linestyles="--", linewidth=1.0,
                                  label="_chance")  # fmt: skip
                lows = [*(part["value"] - part["value_std"].fillna(0)), *(chance(t) or 1 for t in tasks)]
                highs = part["value"] + part["value_std"].fillna(0)
                ax.set_ylim(min(lows) - 0.02, highs.max() + 0.02)  # the scores' range, not from 0
                ax.set_ylabel("accuracy (mean over seeds)")
            else:
                ax.set_ylabel("bits per byte (lower is better)")
            ax.set_title(f"{shift} shift: {kind}", fontsize=8)
    seen = {}
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    # The legend in the strategies' fixed order (pre-trained, CPT by replay ratio, …, union), not draw order.
    rank = {style.strategy(k)[0]: i for i, k in enumerate(_order(set(stats["key"])))}
    names = sorted((lab for lab in seen if not lab.startswith("_")), key=lambda lab: rank.get(lab.split(" (")[0], 99))
    handles = [seen[lab] for lab in names]
    handles += [Line2D([], [], **ITEM_ERR), Line2D([], [], color="black", marker="_", markersize=8),
                Line2D([], [], color="#d62728", linestyle="--", linewidth=1.0)]  # fmt: skip
    names += ["lm-eval stderr (items)", "± std over seeds (n ≥ 2 only)", "chance"]
    fig.legend(handles, names, loc="outside lower center", ncols=3, fontsize=7)
    fig.suptitle("Benchmarks per model: mean over seeds (n in legend)", fontsize=9)
    return fig
