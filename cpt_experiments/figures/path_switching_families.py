"""(g) Paper 2 across schedule families: path switching − PTFS of the same family, per version.

One panel per family present in the runs (cosine, knee, multistep): the seed-paired difference of the
released models (nats/token; ± std over seeds where n ≥ 2) for every branch fraction f, at the same version
(solid) and at matched tokens (dashed, ``results.version_claims.matched``); ★ the paper's "matches PTFS".
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from cpt_experiments.figures import MissingFigureData, style
from cpt_experiments.figures.path_switching import differences, keys_of
from cpt_experiments.results import labels

NAME = "path_switching_families"
FAMILIES = ("cosine", "knee", "multistep")


@style.styled
def make(results_dir: Path) -> Figure:
    per = {}
    for fam in FAMILIES:
        try:
            d = differences(results_dir, NAME, fam)
        except MissingFigureData:
            continue
        d = d[d["key"].str.startswith("ps-") & d["matching"].isin(["version", "tokens"])]
        if not d.empty:
            per[fam] = d
    if not per:
        raise MissingFigureData(f"{NAME}: no path-switching variant named ps-<family>-<f> with a PTFS of its family")
    fig, axes = style.new_figure(1, len(per), sharey=True)
    fig.set_size_inches(style.PANEL_W * len(per), style.PANEL_H * 1.4)
    for ax, (fam, d) in zip(axes[0], per.items()):
        style.zero_line(ax)
        for key in keys_of(d):
            label, color, marker = style.strategy(key)
            for matching, ls in (("version", "-"), ("tokens", "--")):
                part = d[(d["key"] == key) & (d["matching"] == matching)].sort_values("version")
                if part.empty:
                    continue
                name = label if matching == "version" else "_"  # n: in the panel title
                ax.plot(part["version"], part["diff"], marker=marker, linestyle=ls, color=color, label=name)
                many = part["n"] >= 2
                if many.any():
                    ax.errorbar(part.loc[many, "version"], part.loc[many, "diff"], yerr=part.loc[many, "diff_std"],
                                fmt="none", ecolor=color, capsize=3, label=style.SEED_BARS)  # fmt: skip
        style.paper_mark(ax, [4], [0.0], label="paper: matches PTFS")
        ax.set_title(f"{fam} family, seeds: {labels.n_text(d['n'])}", fontsize=8)
        ax.set_xticks([1, 2, 3, 4])
        ax.set_xlim(0.7, 4.3)
        ax.set_xlabel("version")
    axes[0][0].set_ylabel("path switching − PTFS (nats/token)")
    handles, names = axes[0][0].get_legend_handles_labels()
    handles += [Line2D([], [], color="#444444", linestyle="-"), Line2D([], [], color="#444444", linestyle="--")]
    names += ["at the same version", "at matched tokens"]
    fig.legend(handles, names, loc="outside lower center", ncols=3, fontsize=7)
    fig.suptitle("Paper 2: path switching − PTFS of the same family (seed-paired; bars ± std over seeds, n ≥ 2)",
                 fontsize=9)  # fmt: skip
    return fig
