"""How cells are named: the factors that tell aggregated cells apart, as short legend and table text.

``results.groups`` decides which rows form a cell; this module only words the difference between cells
("η_max=0.001, replay 5%, corpora en_new=web") and the seed counts behind a point ("n=1–3").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from cpt_experiments.results.groups import CELL_FACTORS, corpus_entries, value_text

#: Factors shown to tell cells apart in labels: ``chain_corpora`` (every corpus of the chain)
#: instead of ``corpora``, which changes with replay (the old corpus joins) within one series.
LABEL_FACTORS: tuple[str, ...] = tuple(c for c in CELL_FACTORS if c != "corpora") + ("chain_corpora",)


def varying(cells: pd.DataFrame, columns: Sequence[str] = LABEL_FACTORS) -> list[str]:
    """The ``columns`` whose value is not the same in every row of ``cells`` (missing counts as a value)."""
    return [c for c in columns if c in cells.columns and cells[c].map(value_text).nunique() > 1]


def describe(row: Mapping, columns: Sequence[str], among: pd.DataFrame | None = None) -> str:
    """Short text of a row's values in ``columns``, e.g. "η_max=0.001, replay 5%, corpora en_new=web@ab12".

    With ``among`` (the rows it is told apart from), corpus entries common to all of them are left out.
    """
    parts = []
    for c in columns:
        v = row[c]
        if value_text(v) == "":
            parts.append(f"{c}=?")
        elif c == "replay_ratio":
            parts.append(f"replay {v:.0%}")
        elif c in ("eta_max", "eta_min", "eta_const"):
            parts.append(f"η_{c[4:]}={v:g}")
        elif c == "shift":
            parts.append(f"{v} shift")
        elif c in ("corpora", "chain_corpora"):
            parts.append("corpora " + _corpus_text(v, among[c] if among is not None and c in among else None))
        else:
            parts.append(f"{c}={v}")
    return ", ".join(parts)


def _corpus_text(value: object, among: pd.Series | None) -> str:
    """The corpus entries of ``value`` not shared by every value in ``among``; content hashes are
    dropped when the corpus names alone already tell ``among`` apart."""
    entries = corpus_entries(value) or frozenset()
    if among is None:
        return ",".join(sorted(entries))
    sets = [corpus_entries(x) or frozenset() for x in among]
    common = frozenset.intersection(*sets) if sets else frozenset()

    def short(es: frozenset[str]) -> frozenset[str]:
        return frozenset(e.split("@")[0] for e in es - common)

    named = len({short(x) for x in sets}) == len({x - common for x in sets})
    return ",".join(sorted(short(entries) if named else entries - common))


def disambiguate(cells: pd.DataFrame, labels: Sequence[str], columns: Sequence[str] = LABEL_FACTORS) -> list[str]:
    """``labels`` with the factors that differ among cells sharing a label appended, so no two cells look alike.

    Cells that differ only through an ancestor get "cell k" appended (k = position in ``cells``).
    """
    labels = list(labels)
    out = list(labels)
    frame = cells.reset_index(drop=True).assign(_label=labels)
    for _, part in frame.groupby("_label", sort=False):
        if len(part) < 2:
            continue
        cols = varying(part, columns)
        for i, row in part.iterrows():
            extra = describe(row, cols, part) if cols else ""
            out[i] = f"{labels[i]} ({extra})" if extra else labels[i]
        texts = [out[i] for i in part.index]
        if len(set(texts)) < len(texts):
            for i in part.index:
                out[i] = f"{out[i]} [cell {i}]"
    return out


def n_text(n: Iterable[int]) -> str:
    """ "n=2" for one seed count, "n=1–3" for a range: the number of distinct seeds behind each point."""
    ns = sorted({int(k) for k in n})
    if not ns:
        return "n=0"
    return f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}–{ns[-1]}"
