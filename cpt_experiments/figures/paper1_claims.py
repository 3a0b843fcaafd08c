"""(h) Paper 1's claims as difference panels: ours A − B (seed-paired, nats/token, ± std over seeds where
n ≥ 2) beside the paper's value of the same difference (★), one panel per claim family.

Reads ``results.claims.claims_table`` (the numbers and verdicts of the README's claims table), so the figure
and the table can never disagree. Panels: forgetting against the replay ratio (claim 3), the D1 cost of replay
(4), the AVG gap to the union (5), the re-warm peak (1-2: adaptation vs constant η_min), the final comparison
CPT − union (6), the infinite schedules − repeated cosine (10), and benchmark accuracy CPT − union (other
benchmarks than the paper's: its ★ is HellaSwag-DE / its English average).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cpt_experiments.errors import DataError
from cpt_experiments.figures import MissingFigureData, style
from cpt_experiments.results import claims, labels

NAME = "paper1_claims"
SHIFT_NAME = {"s": "strong shift", "w": "weak shift"}
#: Panel title -> (groups per shift letter, x axis kind).
PANELS = {
    "(3) forgetting (English − pre-trained)": (("3-none", "3-replay"), "ratio"),
    "(4) D1 cost of replay (x% − 0%)": (("4-cost",), "ratio"),
    "(5) AVG gap to the union (x% − union)": (("5-union",), "ratio"),
    "(1–2) D1: re-warm − constant η_min": (("2-adapt",), "label"),
    "(6) final CPT − union": (("6-old", "6-new", "6-avg"), "label"),
    "(LM eval) accuracy CPT − union": (("-lmeval",), "label"),
}


def frame(results_dir: Path) -> pd.DataFrame:
    """``claims.claims_table`` of ``results_dir`` (MissingFigureData when it has no paper-1 comparison)."""
    try:
        ct = claims.claims_table(results_dir)
    except DataError as exc:
        raise MissingFigureData(f"{NAME}: {exc}") from None
    if ct.empty:
        raise MissingFigureData(f"{NAME}: no paper-1 comparison in {results_dir}")
    return ct


def _ratio(label: str) -> float:
    return float(label.rstrip("%")) / 100


def _points(ax, x, part: pd.DataFrame, color: str, marker: str, label: str, joined: bool = True) -> None:
    ax.plot(x, part["ours"], marker=marker, linestyle="-" if joined and len(part) > 1 else "none", color=color,
            label=f"{label} ({labels.n_text(part['n'])})")  # fmt: skip
    many = (part["n"] >= 2).to_numpy()
    if many.any():
        ax.errorbar(np.asarray(x)[many], part["ours"].to_numpy()[many], yerr=part["ours_std"].to_numpy()[many],
                    fmt="none", ecolor=color, capsize=3, label=style.SEED_BARS)  # fmt: skip
    paper = part["paper"].to_numpy(dtype=float)
    if np.isfinite(paper).any():
        ax.plot(x, paper, linestyle="none", marker="*", markersize=8, markerfacecolor="none", markeredgecolor=color,
                label="_paper")  # fmt: skip


def claim_panel(ax, ct: pd.DataFrame, title: str, suffixes: tuple[str, ...], xkind: str) -> None:
    """One claim family on ``ax``: ours per shift (± std over seeds) and the paper's ★, y = 0 marked.
    ``suffixes`` select the claims-table groups after the shift letter; ``xkind``: ratio | label."""
    style.zero_line(ax)
    for k, shift in enumerate(("s", "w")):
        part = ct[ct["group"].isin([f"{shift}{s}" for s in suffixes])]
        if part.empty:
            continue
        if xkind == "ratio":
            part = part.assign(x=part["label"].map(_ratio)).sort_values("x")
            x = part["x"].to_numpy()
        else:
            labels = list(dict.fromkeys(ct[ct["group"].str[1:].isin(suffixes) | ct["group"].str.endswith(
                suffixes)]["label"]))  # fmt: skip
            x = np.array([labels.index(lab) for lab in part["label"]]) + (k - 0.5) * 0.15
            ax.set_xticks(range(len(labels)), labels, fontsize=7)
        _points(ax, x, part, style.FIXED[SHIFT_NAME[shift]], "o" if shift == "s" else "s", SHIFT_NAME[shift],
                joined=xkind == "ratio" or title.startswith("(1"))  # fmt: skip
    if xkind == "ratio":
        ax.set_xscale("symlog", linthresh=0.005)
        ax.set_xticks([0, 0.01, 0.1, 0.5], ["0", "1%", "10%", "50%"])
        ax.set_xlabel("replay ratio")
    ax.set_title(title, fontsize=8)
    ax.set_ylabel("A − B (nats/token)" if "accuracy" not in title else "A − B (accuracy)")


def claim_rows(results_dir: Path) -> pd.DataFrame | None:
    """``claims.claims_table`` of ``results_dir``, or None where it has no paper-1 comparison (other presets)."""
    try:
        ct = claims.claims_table(results_dir)
    except DataError:
        return None
    return ct if not ct.empty else None


@style.styled
def make(results_dir: Path) -> Figure:
    ct = frame(results_dir)
    present = {title: spec for title, spec in PANELS.items() if any(ct["group"].str[1:].isin(spec[0]) |
               ct["group"].str.endswith(spec[0])) }  # fmt: skip
    inf = ct[ct["group"].str.startswith("10-")]
    n_panels = len(present) + (not inf.empty)
    if n_panels == 0:
        raise MissingFigureData(f"{NAME}: no claim family with rows in {results_dir}")
    ncols = 3
    nrows = -(-n_panels // ncols)
    fig, axes = style.new_figure(nrows, ncols)
    flat = [ax for row in axes for ax in row]
    for ax, (title, (suffixes, xkind)) in zip(flat, present.items()):
        claim_panel(ax, ct, title, suffixes, xkind)
    if not inf.empty:
        ax = flat[len(present)]
        style.zero_line(ax)
        for shape in ("cosine", "inverse_sqrt"):
            part = inf[inf["group"] == f"10-{shape}"]
            if not part.empty:
                label, color, marker = style.strategy(f"infinite-{shape}")
                x = part["label"].str.removeprefix("split ").astype(int).to_numpy()
                _points(ax, x, part, color, marker, label)
        ax.set_xticks([1, 2, 3])
        ax.set_xlabel("split")
        ax.set_ylabel("A − B (nats/token)")
        ax.set_title("(10) infinite release − repeated cosine", fontsize=8)
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    handles, labels = [], []
    for ax in flat[:n_panels]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if not lab.startswith("_") and lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=7)
    fig.suptitle("Paper 1 claims: ours A − B (seed-paired; bars ± std over seeds, n ≥ 2) and the paper's value "
                 "(open star, same colour)", fontsize=9)  # fmt: skip
    return fig
