"""(g) Paper 2 across schedule families: PTFS vs path switching (every branch length) for cosine, knee, multistep.

One panel per family present in the runs: final validation loss (nats/token) of the released model per
version, PTFS of that family against path switching with each branch fraction f of that family.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from cpt_experiments.figures import MissingFigureData, data, style
from cpt_experiments.figures.path_switching import tables
from cpt_experiments.results import releases

NAME = "path_switching_families"
FAMILIES = ("cosine", "knee", "multistep")


@style.styled
def make(results_dir: Path) -> Figure:
    tab, _ = tables(results_dir, NAME)
    own = tab[tab["name"].str.match(r"^(ptfs|ps)-")]  # PTFS and path switching: named by their family
    of = own["variant"].map(releases.family)
    family = {f: own[of == f] for f in FAMILIES if own.loc[of == f, "name"].str.startswith("ps-").any()}
    if not family:
        raise MissingFigureData(f"{NAME}: no path-switching variant named ps-<family>-<f> in the runs")
    colors = style.palette(tab["name"].str.replace(r"^(ptfs|ps)-[a-z]+", r"\1", regex=True))
    fig, axes = style.new_figure(1, len(family), sharey=True)
    for ax, (fam, part) in zip(axes[0], family.items()):
        for name, rows in part.groupby("name"):
            rows = rows.sort_values("version")
            key = name.replace(f"-{fam}", "")
            style.seed_points(ax, rows["version"], rows["loss"], rows["n"], yerr=rows["loss_std"], color=colors[key],
                              label=data.with_n(key, rows["n"]), linestyle="--" if key == "ptfs" else "-")  # fmt: skip
        ax.set_title(f"{fam} family")
        ax.set_xlabel("version")
        ax.set_xticks(sorted(part["version"].unique()))
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("final validation loss (nats/token)")
    fig.suptitle(f"Paper 2: PTFS vs path switching per schedule family: {style.SEED_NOTE}", fontsize=9)
    return fig
