"""Block sizes and per-source quotas of a mixture plan: how many windows each source gets in each block.

A block of ``block_batches * batch_windows`` positions holds an exact integer quota per source when the weights
allow one (the smallest such block is chosen); otherwise cumulative counts at each block boundary are the
largest-remainder rounding of ``weights * n``, refused where that could shrink (the Alabama paradox). Pure numpy.
"""

from __future__ import annotations

import math

import numpy as np

from cpt_experiments.errors import config_error

MAX_BLOCK_BATCHES = 1000
_INT_TOL = 1e-9  # weights * block within this of an integer count as an exact quota (float rounding only)


def largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total`` with ``|count - w*total| < 1``; ties go to the lower source index."""
    exact = weights * total
    counts = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


def choose_block(
    weights: np.ndarray, names: list[str], batch_windows: int, block_batches: int | None
) -> tuple[int, bool]:
    """(block in batches, exact quotas?): ``block_batches`` if given, else the smallest block (in batches) with
    integer quotas, else the smallest where every source gets >= 1 window."""
    g = batch_windows
    if block_batches is not None:
        if int(block_batches) != block_batches or block_batches < 1:
            raise config_error("mixing.block_batches", f"must be a positive integer or null, got {block_batches!r}")
        k = int(block_batches)
        exact = is_integral(weights, k * g)
        if not exact:
            require_monotone(weights, names, batch_windows, k, "mixing.block_batches")
        return k, exact
    for k in range(1, MAX_BLOCK_BATCHES + 1):
        if is_integral(weights, k * g):
            return k, True
    positive = weights[weights > 0]
    k = max(1, math.ceil(1.0 / (positive.min() * g) - 1e-12))
    require_monotone(weights, names, batch_windows, k, "mixing.weights")
    return k, False


def is_integral(weights: np.ndarray, block: int) -> bool:
    """Whether ``weights * block`` are integers (within float rounding), each positive weight's at least 1."""
    x = weights * block
    # a positive weight must get a positive quota: never round a small source away
    return bool(np.all(np.abs(x - np.rint(x)) < _INT_TOL) and np.all(np.rint(x)[weights > 0] >= 1))


def require_monotone(weights: np.ndarray, names: list[str], batch_windows: int, k: int, key: str) -> None:
    """ConfigError naming ``key`` unless every source expects >= 1 window per block of ``k`` batches."""
    # Cumulative largest-remainder counts can shrink between boundaries (Alabama paradox) unless every source
    # expects >= 1 window per block; refuse rather than emit negative quotas.
    per_block = weights * k * batch_windows
    bad = [(n, p) for n, p in zip(names, per_block) if 0 < p < 1]
    if bad or k > MAX_BLOCK_BATCHES:
        smallest = int(np.argmin(np.where(weights > 0, weights, np.inf)))
        name, p = bad[0] if bad else (names[smallest], float(per_block[smallest]))
        if bad:
            raise config_error(
                key, f"source {name!r} gets {p:.3g} windows per block of {k} batches; use a larger block"
            )
        raise config_error(
            key,
            f"source {name!r} needs a block of {k} > {MAX_BLOCK_BATCHES} batches to get one window; "
            "raise its weight or drop it",
        )
