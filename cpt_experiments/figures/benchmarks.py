"""(g) Benchmark scores per variant with stderr bars (lm-eval rows of evals.csv)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cpt_experiments.figures import data, style

NAME = "benchmarks"


@style.styled
def make(results_dir: Path) -> Figure:
    """Grouped bars: tasks on x, one bar per variant (run/stage label), error bars = reported stderr."""
    evals = data.load(results_dir, "evals", NAME)
    runs = data.load(results_dir, "runs", NAME)
    evals = data.benchmark_scores(evals)
    data.require(evals, f"benchmark score rows ({', '.join(data.SCORE_METRICS)}) in evals.csv", NAME)
    info = runs.set_index(["run_id", "stage"])
    evals = evals.join(info[[c for c in ("variant", "role", "schedule", "eta_max", "replay_ratio", "shift") if c in info]],
                       on=["run_id", "stage"])  # fmt: skip
    evals["label"] = [
        (f"{r['shift']}: " if isinstance(r["shift"], str) else "") + data.label(r) for _, r in evals.iterrows()
    ]
    stats = (
        evals.groupby(["task", "metric", "label"]).agg(value=("value", "mean"), stderr=("stderr", "mean")).reset_index()
    )
    tasks = sorted(stats["task"].unique())
    labels = sorted(stats["label"].unique())
    colors = style.palette(labels)
    fig, axes = style.new_figure(1, 1)
    fig.set_size_inches(max(style.PANEL_W, 0.5 * len(tasks) * len(labels) + 1.5), style.PANEL_H * 1.3)
    ax = axes[0][0]
    width = 0.8 / len(labels)
    for k, lab in enumerate(labels):
        part = stats[stats["label"] == lab].set_index("task").reindex(tasks)
        x = np.arange(len(tasks)) + (k - (len(labels) - 1) / 2) * width
        ax.bar(x, part["value"], width=width, yerr=part["stderr"], capsize=2, color=colors[lab], label=lab)
    metric_of = stats.groupby("task")["metric"].first()
    ax.set_xticks(np.arange(len(tasks)), [f"{t}\n({metric_of[t]})" for t in tasks])
    ax.set_ylabel("score (± stderr)")
    ax.set_xlabel("task (metric)")
    ax.set_title("Benchmark scores per variant")
    ax.legend(fontsize=7, ncols=2)
    return fig
