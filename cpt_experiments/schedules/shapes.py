"""Pure schedule functions ``f(step, *, <params>) -> absolute LR`` and the decay shapes they use.

Boundary conventions, units and sources: see the package docstring (``cpt_experiments.schedules``).
Every length parameter here is a step count (a float: paper 1 keeps W = warmup_frac·T unrounded);
``build.py`` turns the config's fractions into these counts. No torch, no globals, no string
dispatch per call: the decay shape is a function argument chosen once at build time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

# A decay shape maps progress s ∈ [0, 1] of a decay phase and its endpoints (hi → lo) to an LR,
# with shape(0, hi, lo) == hi and shape(1, hi, lo) == lo.
DecayShape = Callable[[float, float, float], float]


# ---- decay shapes -------------------------------------------------------------------------------


def linear_decay(s: float, hi: float, lo: float) -> float:
    """hi − (hi − lo)·s: the linear cooldown of paper 1 (§7.2) and the Knee branch of paper 2."""
    return hi - (hi - lo) * s


def cosine_decay(s: float, hi: float, lo: float) -> float:
    """lo + ½(hi − lo)(1 + cos πs): paper 1 Eq. 2 (§5) and the cosine cooldown (§7.2)."""
    return lo + 0.5 * (hi - lo) * (1.0 + math.cos(math.pi * s))


def sqrt_decay(s: float, hi: float, lo: float) -> float:
    """lo + (hi − lo)(1 − √s): the "1 − sqrt" WSD cooldown (Hägele et al. 2024)."""
    return lo + (hi - lo) * (1.0 - math.sqrt(s))


def inverse_sqrt_decay(s: float, hi: float, lo: float, *, alpha: float) -> float:
    """hi + (lo − hi)·h(s)/h(1), h(x) = 1/√(1 + αx) − 1: paper 1's InvSqrt cooldown, α = 10 (§7.2)."""

    def h(x: float) -> float:
        return 1.0 / math.sqrt(1.0 + alpha * x) - 1.0

    return hi + (lo - hi) * h(s) / h(1.0)


def multistep_decay(
    s: float, hi: float, lo: float, *, step_fracs: Sequence[float], step_factors: Sequence[float]
) -> float:
    """hi·step_factors[k] for the last k with step_fracs[k] ≤ s, hi before the first drop.

    DeepSeek-style drops (×0.316, then 0.1 of the peak). ``lo`` is reached by the caller at s = 1;
    the builder checks that the last factor times ``hi`` equals ``lo`` so the hold is continuous.
    """
    lr = hi
    for frac, factor in zip(step_fracs, step_factors):
        if s < frac:
            break
        lr = hi * factor
    return lr


# ---- schedules ----------------------------------------------------------------------------------


def constant(step: int, *, lr: float) -> float:
    """``lr`` at every step: paper 1's no-re-warm baseline at η_min (§5.1)."""
    return lr


def warmup_constant(step: int, *, max_lr: float, warmup_steps: float) -> float:
    """Linear warmup from 0 over W steps, then ``max_lr`` forever: paper 2's main path (B2)."""
    if warmup_steps > 0 and step <= warmup_steps:
        return max_lr * step / warmup_steps
    return max_lr


def warmup_cosine(step: int, *, max_lr: float, min_lr: float, warmup_steps: float, total_steps: int) -> float:
    """Warmup 0 → η_max over W, cosine to η_min at T with denominator T − W, floored at η_min.

    Paper 1 Eq. 1–2 (§5); also the re-warm + re-decay at a stage boundary (counter restarts
    at 0, so the re-warm starts from 0). Steps past T hold η_min.
    """
    if warmup_steps > 0 and step <= warmup_steps:
        return max_lr * step / warmup_steps
    n = min(step, total_steps)
    lr = cosine_decay((n - warmup_steps) / (total_steps - warmup_steps), max_lr, min_lr)
    return max(lr, min_lr)


def infinite(
    step: int,
    *,
    max_lr: float,
    const_lr: float,
    min_lr: float,
    warmup_steps: float,
    cooldown_steps: float,
    constant_end: float,
    anneal_steps: float,
    cooldown: DecayShape,
) -> float:
    """Paper 1's infinite schedule (§7.2): warmup, cooldown η_max → η_const, constant, exp anneal.

    With m = step − W: cooldown for m < D (progress m/D), η_const while m ≤ K (``constant_end``),
    then η_const·(η_min/η_const)^((m − K)/A), floored at η_min. ``anneal_steps`` = 0 means no anneal
    (the main path that runs through later stages at η_const).
    """
    if warmup_steps > 0 and step <= warmup_steps:
        return max_lr * step / warmup_steps
    m = step - warmup_steps
    if m < cooldown_steps:
        return cooldown(m / cooldown_steps, max_lr, const_lr)
    if m <= constant_end or anneal_steps == 0:
        return const_lr
    u = (m - constant_end) / anneal_steps
    return max(const_lr * (min_lr / const_lr) ** u, min_lr)


def exp_anneal(step: int, *, const_lr: float, min_lr: float, anneal_steps: float) -> float:
    """η_const·(η_min/η_const)^(step/A), then η_min: the infinite schedule's anneal as its own branch."""
    if step >= anneal_steps:
        return min_lr
    return max(const_lr * (min_lr / const_lr) ** (step / anneal_steps), min_lr)


def wsd(
    step: int,
    *,
    max_lr: float,
    min_lr: float,
    warmup_steps: float,
    decay_steps: float,
    total_steps: int,
    decay: DecayShape,
) -> float:
    """Warmup-stable-decay: warmup from 0, η_max until T − decay_steps, ``decay`` to η_min at T."""
    if warmup_steps > 0 and step <= warmup_steps:
        return max_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    decay_start = total_steps - decay_steps
    if step <= decay_start:
        return max_lr
    return decay((step - decay_start) / decay_steps, max_lr, min_lr)


def repeated_cosine(
    step: int, *, max_lr: float, min_lr: float, warmup_steps: float, period_steps: float, total_steps: int
) -> float:
    """The authors' ``cosine-inf`` (paper 1, §7.2): cycles of length P, each warmup W then cosine to η_min.

    The first cycle warms from 0; later cycles re-warm from η_min. W is per cycle. Steps ≥ T hold
    η_min.
    """
    if step >= total_steps:
        return min_lr
    cycle = math.floor(step / period_steps)
    r = step - cycle * period_steps
    if warmup_steps > 0 and r <= warmup_steps:
        start = 0.0 if cycle == 0 else min_lr
        return start + (max_lr - start) * r / warmup_steps
    return cosine_decay((r - warmup_steps) / (period_steps - warmup_steps), max_lr, min_lr)


def cosine_cycles(
    step: int, *, max_lr: float, min_lr: float, warmup_frac: float, cycle_starts: tuple[int, ...], total_steps: int
) -> float:
    """Consecutive warmup-cosine cycles starting at the steps ``cycle_starts`` (the first is 0), each one exactly
    ``warmup_cosine`` over its own length L (warmup from 0 over ``warmup_frac``·L, cosine to η_min).

    A continual pre-training chain's LR path (cosine, then re-warm + re-decay per stage) in a single stage:
    the union baseline "with the chain's schedule" (beyond paper 1). Steps ≥ T hold η_min.
    """
    if step >= total_steps:
        return min_lr
    k = next(i for i in range(len(cycle_starts) - 1, -1, -1) if step >= cycle_starts[i])
    end = cycle_starts[k + 1] if k + 1 < len(cycle_starts) else total_steps
    length = end - cycle_starts[k]
    return warmup_cosine(
        step - cycle_starts[k], max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup_frac * length, total_steps=length
    )


def branch_decay(step: int, *, max_lr: float, min_lr: float, decay_steps: float, decay: DecayShape) -> float:
    """Paper 2's branch: from η_max at step 0, ``decay`` to η_min over decay_steps, then hold."""
    if step >= decay_steps:
        return min_lr
    return decay(step / decay_steps, max_lr, min_lr)
