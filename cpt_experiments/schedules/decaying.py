"""The schedules that decay from a peak ``max_lr`` to a floor ``min_lr`` (see ``schedules.specs``)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

from cpt_experiments.schedules import shapes
from cpt_experiments.schedules.specs import Schedule, ScheduleSpec

_COOLDOWN_SHAPES = ("cosine", "inverse_sqrt", "linear")
_WSD_SHAPES = ("linear", "cosine", "sqrt", "multistep")
_BRANCH_SHAPES = ("cosine", "linear", "knee", "multistep")
#: Decay shapes by name; knee's exploit phase is a linear decay (Iyer et al.'s explore-exploit schedule).
_DECAYS: dict[str, shapes.DecayShape] = {
    "linear": shapes.linear_decay, "knee": shapes.linear_decay, "cosine": shapes.cosine_decay, "sqrt": shapes.sqrt_decay,
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class _Decaying(ScheduleSpec):
    """A schedule from a peak ``max_lr`` > 0 down to a floor ``min_lr`` <= max_lr."""

    max_lr: float
    min_lr: float

    def __post_init__(self) -> None:
        max_lr, min_lr = self._lr("max_lr", positive=True), self._lr("min_lr")
        if min_lr > max_lr:
            raise self._fail("min_lr", f"must be <= max_lr ({max_lr!r}), got {min_lr!r}")

    def _short_warmup(self, what: str) -> float:
        """``warmup_frac`` < 1, as a decay follows it within ``what``."""
        warmup_frac = self._frac("warmup_frac")
        if warmup_frac >= 1.0:
            raise self._fail("warmup_frac", f"warmup must be shorter than {what}, got {warmup_frac!r}")
        return warmup_frac

    def _decay(self, key: str, options: tuple[str, ...]) -> shapes.DecayShape:
        """The decay named by field ``key`` (one of ``options``); ``multistep`` reads ``step_fracs``/``step_factors``
        (every preset may carry those two; only multistep reads them)."""
        name = self._choice(key, options)
        return self._multistep() if name == "multistep" else _DECAYS[name]

    def _multistep(self) -> shapes.DecayShape:
        fracs, factors = self._floats("step_fracs"), self._floats("step_factors")
        if len(fracs) != len(factors):
            raise self._fail(
                "step_factors", f"needs one factor per entry of step_fracs ({len(fracs)}), got {len(factors)}"
            )
        if any(not 0 <= f < 1 for f in fracs) or any(b <= a for a, b in zip(fracs, fracs[1:])):
            raise self._fail("step_fracs", f"must be strictly increasing in [0, 1), got {list(fracs)!r}")
        if any(not 0 < f <= 1 for f in factors) or any(b > a for a, b in zip(factors, factors[1:])):
            raise self._fail("step_factors", f"must be non-increasing in (0, 1], got {list(factors)!r}")
        max_lr, min_lr = float(self.max_lr), float(self.min_lr)
        if not math.isclose(max_lr * factors[-1], min_lr, rel_tol=1e-6):
            # A complete decay (paper 2, finding 2) ends at η_min; a gap would jump at the decay's end.
            raise self._fail(
                "step_factors", f"last factor × max_lr = {max_lr * factors[-1]!r} must equal min_lr = {min_lr!r}"
            )
        return functools.partial(shapes.multistep_decay, step_fracs=fracs, step_factors=factors)


@dataclass(frozen=True, kw_only=True)
class WarmupCosine(_Decaying):
    """Linear warmup, then a cosine to ``min_lr`` at the end of the stage (paper 1, §5)."""

    NAME: ClassVar[str] = "warmup_cosine"
    warmup_frac: float

    def __post_init__(self) -> None:
        super().__post_init__()
        self._short_warmup("the stage (a decay follows)")

    def _bind(self, total: int) -> Schedule:
        return functools.partial(
            shapes.warmup_cosine, max_lr=float(self.max_lr), min_lr=float(self.min_lr),
            warmup_steps=float(self.warmup_frac) * total, total_steps=total,
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Infinite(_Decaying):
    """Paper 1's infinite schedule (§7.2): warmup, cooldown to ``const_lr``, constant, optional anneal.

    ``alpha`` (the inverse-sqrt cooldown's timescale) has no default here: its value lives in the YAML
    (``conf/schedule/infinite_inv_sqrt.yaml``), so the stage hash covers exactly what the config set.
    """

    NAME: ClassVar[str] = "infinite"
    const_lr: float
    warmup_frac: float
    cooldown_frac: float
    anneal_frac: float
    cooldown_shape: str
    alpha: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        min_lr, max_lr, const_lr = float(self.min_lr), float(self.max_lr), self._lr("const_lr")
        if not (min_lr <= const_lr <= max_lr and const_lr > 0):
            raise self._fail(
                "const_lr", f"must be > 0 and in [min_lr, max_lr] = [{min_lr!r}, {max_lr!r}], got {const_lr!r}"
            )
        total = self._frac("warmup_frac") + self._frac("cooldown_frac") + self._frac("anneal_frac")
        if total > 1.0 + 1e-12:
            raise self._fail(
                "cooldown_frac",
                f"warmup_frac + cooldown_frac + anneal_frac = {total:g} exceeds the stage (must be <= 1)",
            )
        shape = self._choice("cooldown_shape", _COOLDOWN_SHAPES)
        if self.alpha is not None or shape == "inverse_sqrt":
            if self.alpha is None:
                raise self._fail("alpha", "missing (required by cooldown_shape 'inverse_sqrt'; the preset sets 10.0)")
            if self._number("alpha") <= 0:
                raise self._fail("alpha", f"must be > 0, got {self.alpha!r}")

    def _bind(self, total: int) -> Schedule:
        cooldown: shapes.DecayShape = {
            "cosine": shapes.cosine_decay,
            "linear": shapes.linear_decay,
            "inverse_sqrt": functools.partial(shapes.inverse_sqrt_decay, alpha=float(self.alpha or 0.0)),
        }[self.cooldown_shape]
        warmup, anneal = float(self.warmup_frac) * total, float(self.anneal_frac) * total
        return functools.partial(
            shapes.infinite,
            max_lr=float(self.max_lr),
            const_lr=float(self.const_lr),
            min_lr=float(self.min_lr),
            warmup_steps=warmup,
            cooldown_steps=float(self.cooldown_frac) * total,
            # K is measured from the end of warmup, so the anneal A = T − W − K ends exactly at T.
            constant_end=max(total - warmup - anneal, 0.0),
            anneal_steps=anneal,
            cooldown=cooldown,
        )


@dataclass(frozen=True, kw_only=True)
class Wsd(_Decaying):
    """Warmup-stable-decay; ``multistep`` decay is paper 2's multi-step PTFS."""

    NAME: ClassVar[str] = "wsd"
    warmup_frac: float
    decay_frac: float
    decay_shape: str
    step_fracs: tuple[float, ...] | None = None
    step_factors: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        warmup_frac, decay_frac = self._frac("warmup_frac"), self._frac("decay_frac")
        if warmup_frac + decay_frac > 1.0 + 1e-12:
            raise self._fail("decay_frac", f"warmup_frac + decay_frac = {warmup_frac + decay_frac:g} exceeds the stage")
        self._decay("decay_shape", _WSD_SHAPES)

    def _bind(self, total: int) -> Schedule:
        return functools.partial(
            shapes.wsd, max_lr=float(self.max_lr), min_lr=float(self.min_lr), warmup_steps=float(self.warmup_frac) * total,
            decay_steps=float(self.decay_frac) * total, total_steps=total, decay=self._decay("decay_shape", _WSD_SHAPES),
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class RepeatedCosine(_Decaying):
    """``num_repeats`` equal warmup + cosine cycles (paper 1's repeated cosine); ``warmup_frac`` is of each cycle."""

    NAME: ClassVar[str] = "repeated_cosine"
    num_repeats: int
    warmup_frac: float

    def __post_init__(self) -> None:
        super().__post_init__()
        num_repeats = self._number("num_repeats")
        if num_repeats < 1 or num_repeats != int(num_repeats):
            raise self._fail("num_repeats", f"must be an integer >= 1, got {self.num_repeats!r}")
        self._short_warmup("a cycle")  # W = 0.01·P, as in the authors' configs

    def _bind(self, total: int) -> Schedule:
        if self.num_repeats > total:
            raise self._fail("num_repeats", f"must be an integer in [1, total_steps={total}], got {self.num_repeats!r}")
        period = total / int(self.num_repeats)
        return functools.partial(
            shapes.repeated_cosine, max_lr=float(self.max_lr), min_lr=float(self.min_lr),
            warmup_steps=float(self.warmup_frac) * period, period_steps=period, total_steps=total,
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class BranchDecay(_Decaying):
    """Paper 2's branch: decay from ``max_lr`` to ``min_lr`` over ``decay_frac`` of the stage, then hold."""

    NAME: ClassVar[str] = "branch_decay"
    decay_frac: float
    shape: str
    step_fracs: tuple[float, ...] | None = None  # presets carry these for every shape (part of their hashes)
    step_factors: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self._frac("decay_frac") == 0:
            raise self._fail("decay_frac", "must be > 0: a branch must decay to min_lr")
        self._decay("shape", _BRANCH_SHAPES)

    def _bind(self, total: int) -> Schedule:
        return functools.partial(
            shapes.branch_decay, max_lr=float(self.max_lr), min_lr=float(self.min_lr),
            decay_steps=float(self.decay_frac) * total, decay=self._decay("shape", _BRANCH_SHAPES),
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class CosineCycles(_Decaying):
    """Warmup + cosine cycles of given shares of the stage: a CPT chain's LR path as one schedule."""

    NAME: ClassVar[str] = "cosine_cycles"
    warmup_frac: float  # of each cycle
    cycle_fracs: tuple[float, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        self._short_warmup("a cycle")
        fracs = self._floats("cycle_fracs")
        if any(f <= 0 for f in fracs) or not math.isclose(sum(fracs), 1.0, rel_tol=1e-9):
            raise self._fail("cycle_fracs", f"must be positive shares of the stage summing to 1, got {list(fracs)!r}")

    def _bind(self, total: int) -> Schedule:
        fracs = [float(f) for f in self.cycle_fracs]
        starts = tuple(round(sum(fracs[:i]) * total) for i in range(len(fracs)))
        if any(b <= a for a, b in zip(starts, (*starts[1:], total))):
            raise self._fail(
                "cycle_fracs", f"every cycle needs at least one of the stage's {total} steps, got {fracs!r}"
            )
        return functools.partial(
            shapes.cosine_cycles, max_lr=float(self.max_lr), min_lr=float(self.min_lr),
            warmup_frac=float(self.warmup_frac), cycle_starts=starts, total_steps=total,
        )  # fmt: skip
