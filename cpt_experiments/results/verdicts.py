"""One rule turns a seed-paired difference A − B into a verdict word, for both papers' claims tables.

The rule (stated in results/README.md, "Verdicts"): the 95% paired t-interval over the seeds,
mean ± t(0.975, n − 1) · std / √n, is read against what the paper says:

* ``sign`` claims (the paper gives a difference with a sign, e.g. "re-warming forgets more", +0.34):
  **holds** when the interval excludes 0 on the paper's side and, where the paper gives a number,
  comes within ``TOLERANCE`` of it; **holds in direction** when only the side matches; **does not hold**
  when it excludes 0 on the other side; **not resolved** when it covers 0.
* ``at most`` claims ("A reaches B", "costs little": A − B ≤ the paper's value, 0 if it gives none):
  **holds** when the interval's upper end is ≤ paper + ``TOLERANCE``; **does not hold** when its lower end is
  above that; **not resolved** otherwise.
* ``parity`` claims ("A ≈ B"): **holds** when the interval lies inside ±``TOLERANCE``; **does not hold**
  when it lies outside; **not resolved** otherwise.
* **by construction**: the quantity is fixed by the config (a token ratio), nothing is measured;
  **indicative**: one seed (no interval), whatever the difference.

``TOLERANCE`` is in the row's unit: nats/token for losses, a fraction (0–1) for accuracies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

#: How close (row unit: nats/token, or accuracy as a fraction) an interval must come to the paper's value.
TOLERANCE = 0.02
#: Two-sided 95% Student-t quantiles t(0.975, df) for df = 1..30; larger df use the normal 1.96.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip
SENSES = ("sign", "at most", "parity")
WORDS = ("holds", "holds in direction", "not resolved", "does not hold", "indicative", "by construction")


def interval(mean: float, std: float, n: int) -> tuple[float, float]:
    """The 95% paired t-interval (same unit as ``mean``); (nan, nan) for fewer than 2 seeds."""
    if n < 2 or not math.isfinite(std):
        return float("nan"), float("nan")
    half = (T975[n - 2] if n - 1 <= len(T975) else 1.96) * std / math.sqrt(n)
    return mean - half, mean + half


def verdict(
    mean: float,
    std: float,
    n: int,
    *,
    sense: str = "sign",
    paper: float = float("nan"),
    sign: int | None = None,
    by_construction: bool = False,
) -> str:
    """The verdict word of one comparison (module docstring). ``sign`` (+1/−1) is the paper's side when it
    gives no number; otherwise it is the sign of ``paper``."""
    if sense not in SENSES:
        raise ValueError(f"verdict: unknown sense {sense!r} (known: {', '.join(SENSES)})")
    if by_construction:
        return "by construction"
    lo, hi = interval(mean, std, n)
    if math.isnan(lo):
        return "indicative"
    has_number = math.isfinite(paper)
    if sense == "parity":
        if -TOLERANCE <= lo and hi <= TOLERANCE:
            return "holds"
        return "does not hold" if lo > TOLERANCE or hi < -TOLERANCE else "not resolved"
    if sense == "at most":
        bound = (paper if has_number else 0.0) + TOLERANCE
        return "holds" if hi <= bound else "does not hold" if lo > bound else "not resolved"
    side = sign if sign is not None else (1 if paper > 0 else -1 if paper < 0 else 0)
    if side == 0:
        raise ValueError("verdict: a 'sign' claim needs a paper value with a sign, or sign=±1")
    if lo <= 0 <= hi:
        return "not resolved"
    if (lo > 0) != (side > 0):
        return "does not hold"
    if not has_number or (lo <= paper + TOLERANCE and hi >= paper - TOLERANCE):
        return "holds"
    return "holds in direction"


def combine(labels: Sequence[str], words: Sequence[str]) -> str:
    """One README row's verdict from its comparisons: the word if all agree, else each word with its labels
    in the order first seen, e.g. ``holds (25%, 50%); holds in direction (1%, 5%)``."""
    if not words:
        raise ValueError("combine: no comparisons")
    if len(set(words)) == 1:
        return words[0]
    order: dict[str, list[str]] = {}
    for label, word in zip(labels, words):
        order.setdefault(word, []).append(label)
    return "; ".join(f"{w} ({', '.join(ls)})" for w, ls in order.items())


def by_group(table: pd.DataFrame) -> pd.DataFrame:
    """One row per README claims-table row (``group``, in first-seen order): its verdict (``combine`` of its
    comparisons' verdicts by ``label``), the smallest and largest n, and the comparisons it covers."""
    rows = []
    for group, part in table.groupby("group", sort=False):
        rows.append({"group": group, "verdict": combine(list(part["label"]), list(part["verdict"])),
                     "n": f"{int(part['n'].min())}" + ("" if part["n"].nunique() == 1 else f"–{int(part['n'].max())}"),
                     "comparisons": len(part)})  # fmt: skip
    return pd.DataFrame(rows, columns=["group", "verdict", "n", "comparisons"])
