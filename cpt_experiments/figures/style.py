"""One look for every figure: sizes, fonts, a fixed palette per variant/strategy/shift, PNG+PDF output."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

#: rcParams applied while a figure is built (see ``styled``).
RC = {
    "font.family": "DejaVu Sans",  # ships with matplotlib, so figures look the same on every machine
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.5,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
}
PANEL_W, PANEL_H = 3.6, 2.6  # inches per subplot
FIXED = {
    "union": "#000000", "PTFS": "#555555", "ptfs": "#555555", "CPT": "#d62728", "cpt": "#d62728",
    "path switching": "#1f77b4", "path_switching": "#1f77b4", "constant η_min": "#7f7f7f",
    "weak": "#1f77b4", "strong": "#ff7f0e", "none": "#2ca02c",
    "weak shift": "#1f77b4", "strong shift": "#ff7f0e",
}  # fmt: skip
CYCLE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
BOUNDARY = {"color": "#999999", "linestyle": ":", "linewidth": 1.0}
FORMATS = ("png", "pdf")
#: What a point and an error bar mean in every aggregated figure (a subtitle or axis note).
SEED_NOTE = "mean over seeds (n in legend); bars ± std over seeds, only where n ≥ 2"
#: Label of the error-bar artists (hidden from legends; tests find the bars by it).
SEED_BARS = "_seed std"


def palette(keys: Iterable[str]) -> dict[str, str]:
    """Colour per key: fixed colours for known names, then the cycle (minus those fixed colours) in sorted order."""
    keys = sorted(set(keys), key=str)
    taken = {FIXED[k] for k in keys if k in FIXED}
    free = [c for c in CYCLE if c not in taken] or list(CYCLE)  # never two keys in one colour if avoidable
    out, i = {}, 0
    for k in keys:
        if k in FIXED:
            out[k] = FIXED[k]
        else:
            out[k] = free[i % len(free)]
            i += 1
    return out


def new_figure(nrows: int = 1, ncols: int = 1, **subplot_kw) -> tuple[Figure, object]:
    """A pyplot-free Figure (no GUI backend, no global figure registry) and its axes array."""
    fig = Figure(figsize=(PANEL_W * ncols, PANEL_H * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def styled(make: Callable[..., Figure]) -> Callable[..., Figure]:
    """Run a figure's ``make`` inside the house rcParams."""

    @functools.wraps(make)
    def wrapper(*args, **kwargs) -> Figure:
        with matplotlib.rc_context(RC):
            return make(*args, **kwargs)

    return wrapper


def use_agg() -> None:
    """Select the non-interactive Agg backend (CLI and tests: no display needed)."""
    matplotlib.use("Agg")


def save(fig: Figure, out_dir: Path, name: str, formats: Iterable[str] = FORMATS) -> list[Path]:
    """Write ``<out_dir>/<name>.<fmt>`` for each format; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with matplotlib.rc_context(RC):
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            fig.savefig(path, format=fmt)
            paths.append(path)
    return paths


def seed_points(ax, x, y, n, *, color: str, label: str, xerr=None, yerr=None, linestyle: str = "-") -> None:
    """Per-cell means as one marked line, and ± std bars for the points with n ≥ 2 seeds only.

    A single seed has no spread to show, so its point gets no bar (never a zero-width one).
    """
    x, y, many = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(n) >= 2
    ax.plot(x, y, marker="o", linestyle=linestyle, color=color, label=label)
    if many.any():
        ax.errorbar(x[many], y[many], xerr=None if xerr is None else np.asarray(xerr, dtype=float)[many],
                    yerr=None if yerr is None else np.asarray(yerr, dtype=float)[many], fmt="none", ecolor=color,
                    capsize=3, label=SEED_BARS)  # fmt: skip


def legend_below(fig: Figure, ax, ncols: int = 2) -> None:
    """The legend of ``ax`` under the whole figure, so long cell names never squeeze the panels."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize=7)


#: Strategy key -> (legend label, colour, marker): every figure draws a strategy from this table, so it has
#: the same colour, marker and name in every figure whatever else is drawn beside it (never by draw order).
STRATEGIES = {
    # paper 2 (each in every schedule family: the family is the panel, or the line style)
    "ptfs": ("PTFS", "#444444", "s"),
    "cpt_rewarm": ("CPT (a) re-warm + decay", "#d62728", "v"),
    "cpt_const": ("CPT (b) constant η_min", "#ff9896", "<"),
    "cpt_undecayed": ("CPT (c) undecayed start", "#8c564b", ">"),
    "cpt_partial": ("CPT (d) partial decay", "#e377c2", "^"),
    "ps-f10": ("path switching f=0.1", "#9ecae1", "o"),
    "ps-f20": ("path switching f=0.2", "#4292c6", "o"),
    "ps-f45": ("path switching f=0.45", "#08306b", "o"),
    # paper 1
    "pretrain": ("pre-trained", "#7f7f7f", "X"),
    "union": ("union (from scratch)", "#000000", "D"),
    "new_only": ("D1 only (from scratch)", "#8c564b", "P"),
    "constant": ("CPT constant η_min", "#bcbd22", "<"),
    "repeated-cosine": ("repeated cosine", "#17becf", "s"),
    "infinite-cosine": ("infinite, cosine cooldown", "#2ca02c", "o"),
    "infinite-inverse_sqrt": ("infinite, inverse-sqrt cooldown", "#9467bd", "^"),
}
#: CPT with replay: one colour per ratio (light = little replay), so "CPT 25% replay" looks the same everywhere.
REPLAY = {0.0: "#fdd0a2", 0.005: "#fdae6b", 0.01: "#fd8d3c", 0.05: "#f16913", 0.1: "#d94801", 0.25: "#a63603",
          0.5: "#7f2704"}  # fmt: skip
#: CPT re-warmed without replay, by η_max (light = low peak).
REWARM = {0.0005: "#9ecae1", 0.001: "#4292c6", 0.002: "#08306b"}


def strategy(key: str) -> tuple[str, str, str]:
    """(label, colour, marker) of a strategy key; ``replay-<ratio>`` for CPT with replay ("replay-0.25" →
    "CPT 25% replay"). An unknown key keeps one colour too: a checksum of its name picks it from ``CYCLE``."""
    if key in STRATEGIES:
        return STRATEGIES[key]
    if key.startswith("rewarm-"):  # the cpu scale's 0.5×, 1×, 2× of η_max = 1e-3 have fixed colours
        eta = float(key.removeprefix("rewarm-"))
        color = REWARM.get(eta, CYCLE[zlib.crc32(key.encode()) % len(CYCLE)])
        return f"CPT re-warm to η_max {eta:g}", color, "v"
    if key.startswith("replay-"):
        ratio = float(key.removeprefix("replay-"))
        return f"CPT {ratio * 100:g}% replay", REPLAY.get(ratio, "#f16913"), "o"
    return key, CYCLE[zlib.crc32(key.encode()) % len(CYCLE)], "o"


def series_colors(keys: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """Legend name -> colour: each series its strategy's colour, except that a later series of an already
    coloured strategy (two union baselines of different data) takes the first colour of ``CYCLE`` that no
    series uses and no strategy drawn beside it owns."""
    keys, names = list(keys), list(names)
    owned = {strategy(k)[1] for k in keys}
    out: dict[str, str] = {}
    for key, name in zip(keys, names):
        if name in out:
            continue
        color = strategy(key)[1]
        if color in out.values():
            color = next((c for c in CYCLE if c not in owned and c not in out.values()), color)
        out[name] = color
    return out


def paper2_key(variant: str) -> str:
    """Strategy key of a paper-2 variant: ``ps-knee-f20`` → ``ps-f20``, ``ptfs-multistep`` → ``ptfs``."""
    parts = variant.split("-")
    if parts[0] == "ps" and len(parts) == 3:
        return f"ps-{parts[2]}"
    return "ptfs" if parts[0] == "ptfs" else variant


def paper_mark(ax, x, y, *, label: str = "paper") -> None:
    """The paper's value of a claim as a reference mark: an open black star (never a line of ours)."""
    ax.plot(x, y, linestyle="none", marker="*", markersize=9, markerfacecolor="none", markeredgecolor="black",
            label=label)  # fmt: skip


def zero_line(ax) -> None:
    """y = 0 on a difference panel (A − B = 0: A equals the baseline)."""
    ax.axhline(0.0, color="#999999", linewidth=0.8, zorder=0)
