"""(f) Paper 2: each strategy's released model minus PTFS's, per version, and what each costs (cosine family).

The claims are differences (path switching ≈ PTFS, CPT behind PTFS), so the panels are differences,
strategy − PTFS of the same family seed by seed (nats/token, as the claims table; ± std over seeds where
n ≥ 2), with the paper's statement as a reference mark (★ at 0: "matches PTFS"): (a) at the same version,
(b) at matched tokens and (c) at matched cost (``results.version_claims.matched``), (d) the cumulative cost
over PTFS's (``results.ledger``, accounting "extra"; ★ the paper's 58% at version 4). The other schedule
families: ``path_switching_families``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from cpt_experiments.errors import DataError
from cpt_experiments.figures import MissingFigureData, data, style
from cpt_experiments.results import ledger, releases, version_claims

NAME = "path_switching"
#: The CPT variant a claim sets against PTFS (claim 1); (b)-(d) are compared with each other (claims 3-4).
CPT = ("cpt_rewarm",)


def differences(results_dir: Path, figure: str, family: str) -> pd.DataFrame:
    """Strategy − PTFS of ``family`` per version, seed-paired: columns key, variant, matching (version |
    tokens | cost), version, diff, diff_std, n. CPT variants count as cosine (their decays are cosines)."""
    runs = data.load(results_dir, "runs", figure)
    curves = data.load(results_dir, "curves", figure)
    try:
        rel = releases.released(curves, runs)
    except DataError as exc:
        raise MissingFigureData(f"{figure}: {exc}") from None
    base = f"ptfs-{family}"
    if not ((rel["experiment"] == "ptfs") & (rel["variant"] == base)).any():
        raise MissingFigureData(f"{figure}: no PTFS run (role ptfs) of the {family} family ({base})")
    frames = []
    own = rel[(rel["experiment"] != "ptfs") & (rel["variant"].map(releases.family) == family)]
    for (exp, variant), _ in own.groupby(["experiment", "variant"], sort=True):
        try:
            got = [releases.paired(rel, (exp, variant), ("ptfs", base)).assign(matching="version")]
        except DataError:  # no common seed with PTFS
            continue
        if exp == "path_switching":
            got += [version_claims.matched(rel, runs, (exp, variant), base, by).assign(matching=by)
                    for by in ("tokens", "cost")]  # fmt: skip
        frames += [g.assign(key=style.paper2_key(variant), variant=variant) for g in got]
    if not frames:
        raise MissingFigureData(f"{figure}: no strategy of the {family} family shares a seed with {base}")
    return pd.concat(frames, ignore_index=True)


def draw_differences(ax, diffs: pd.DataFrame, keys: list[str]) -> None:
    """One marked line per strategy key (``style.strategy``), ± std over seeds, y = 0 and the paper's ★."""
    style.zero_line(ax)
    for key in keys:
        part = diffs[diffs["key"] == key].sort_values("version")
        if part.empty:
            continue
        label, color, marker = style.strategy(key)
        ax.plot(part["version"], part["diff"], marker=marker, color=color, label=data.with_n(label, part["n"]))
        many = part["n"] >= 2
        if many.any():
            ax.errorbar(part.loc[many, "version"], part.loc[many, "diff"], yerr=part.loc[many, "diff_std"],
                        fmt="none", ecolor=color, capsize=3, label=style.SEED_BARS)  # fmt: skip
    ax.set_xticks([1, 2, 3, 4])
    ax.set_xlim(0.7, 4.3)
    ax.set_xlabel("version")


def keys_of(diffs: pd.DataFrame) -> list[str]:
    """Strategy keys present, in the table's order (path switching by f, then the CPT variants)."""
    present = set(diffs["key"])
    return [k for k in style.STRATEGIES if k in present] + sorted(present - set(style.STRATEGIES))


@style.styled
def make(results_dir: Path) -> Figure:
    diffs = differences(results_dir, NAME, "cosine")
    diffs = diffs[diffs["key"].str.startswith("ps-") | diffs["key"].isin(CPT)]
    keys = keys_of(diffs)
    fig, axes = style.new_figure(2, 2)
    titles = {"version": "(a) at the same version", "tokens": "(b) at matched tokens (PTFS interpolated)",
              "cost": "(c) at matched cost (PTFS's latest release)"}  # fmt: skip
    for ax, (matching, title) in zip([axes[0][0], axes[0][1], axes[1][0]], titles.items()):
        part = diffs[diffs["matching"] == matching]
        draw_differences(ax, part, keys if matching == "version" else [k for k in keys if k.startswith("ps-")])
        ax.set_title(title, fontsize=8)
    for ax in (axes[0][0], axes[1][0]):
        ax.set_ylabel("strategy − PTFS (nats/token)")
    style.paper_mark(axes[0][0], [4], [0.0], label="paper: path switching matches PTFS (v4)")
    ax = axes[1][1]
    runs = data.load(results_dir, "runs", NAME)
    costs = ledger.ledger(runs)
    costs = costs[costs["variant"].map(releases.family) == "cosine"]
    costs = costs.assign(key=costs["variant"].map(style.paper2_key))
    for key in keys_of(costs[costs["key"].isin([*keys, "ptfs"])]):
        part = costs[costs["key"] == key].sort_values("version")
        label, color, marker = style.strategy(key)
        ax.plot(part["version"], 100 * part["ratio_to_ptfs"], marker=marker, color=color, label=label)
    style.paper_mark(ax, [4], [58.0], label="paper: 58% at v4")
    ax.axhline(100.0, color="#999999", linewidth=0.8, zorder=0)
    ax.set_xticks([1, 2, 3, 4])
    ax.set_xlabel("version")
    ax.set_ylabel("cost, % of PTFS")
    ax.set_title("(d) cost (accounting extra)", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    h2, l2 = ax.get_legend_handles_labels()
    handles += [h for h, lab in zip(h2, l2) if lab.startswith(("paper", "PTFS"))]
    labels += [lab for lab in l2 if lab.startswith(("paper", "PTFS"))]
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=7)
    fig.suptitle("Paper 2, cosine family: strategy − PTFS per version (seed-paired; bars ± std over seeds, n ≥ 2)",
                 fontsize=9)  # fmt: skip
    return fig
