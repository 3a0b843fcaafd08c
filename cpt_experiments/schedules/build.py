"""Turn a schedule spec ``{"name": ..., <params>}`` plus the stage length into a picklable callable.

Fractions of the stage (``warmup_frac``, ``cooldown_frac``, ...) become step counts here, from the
``total_steps`` the caller derives from the stage's token budget. Every check raises a one-line
``ConfigError`` naming the key (``schedule.warmup_frac: ...``). Shapes are resolved here, once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

from cpt_experiments.errors import ConfigError, config_error
from cpt_experiments.schedules import shapes

Schedule = Callable[[int], float]

SCHEDULES: dict[str, Callable[..., float]] = {
    "constant": shapes.constant,
    "warmup_constant": shapes.warmup_constant,
    "warmup_cosine": shapes.warmup_cosine,
    "infinite": shapes.infinite,
    "exp_anneal": shapes.exp_anneal,
    "wsd": shapes.wsd,
    "repeated_cosine": shapes.repeated_cosine,
    "branch_decay": shapes.branch_decay,
    "cosine_cycles": shapes.cosine_cycles,
}
"""Name → pure function ``f(step, *, params) -> LR``; ``build_schedule`` binds the params."""

_COOLDOWN_SHAPES = ("cosine", "inverse_sqrt", "linear")
_WSD_SHAPES = ("linear", "cosine", "sqrt", "multistep")
_BRANCH_SHAPES = ("cosine", "linear", "knee", "multistep")


class _Spec:
    """Typed, key-naming access to one spec mapping; tracks which keys were read."""

    def __init__(self, spec: Mapping[str, Any], key: str) -> None:
        self.spec, self.key, self.used = spec, key, {"name"}

    def _get(self, name: str, default: Any) -> Any:
        self.used.add(name)
        if name in self.spec:
            return self.spec[name]
        if default is None:
            raise config_error(f"{self.key}.{name}", f"missing (required by '{self.spec['name']}')")
        return default

    def number(self, name: str, default: float | None = None) -> float:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise config_error(f"{self.key}.{name}", f"must be a finite number, got {value!r}")
        return float(value)

    def lr(self, name: str) -> float:
        value = self.number(name)
        if value < 0:
            raise config_error(f"{self.key}.{name}", f"learning rate must be >= 0, got {value!r}")
        return value

    def frac(self, name: str, default: float | None = None) -> float:
        value = self.number(name, default)
        if not 0.0 <= value <= 1.0:
            raise config_error(f"{self.key}.{name}", f"fraction must be in [0, 1], got {value!r}")
        return value

    def choice(self, name: str, options: tuple[str, ...]) -> str:
        value = self._get(name, None)
        if value not in options:
            raise config_error(f"{self.key}.{name}", f"unknown {value!r}; choose one of {', '.join(options)}")
        return value

    def floats(self, name: str) -> tuple[float, ...]:
        value = self._get(name, None)
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise config_error(f"{self.key}.{name}", f"must be a list of numbers, got {value!r}")
        out = tuple(value)
        if not out or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in out):
            raise config_error(f"{self.key}.{name}", f"must be a non-empty list of numbers, got {list(out)!r}")
        return tuple(float(v) for v in out)

    def fail(self, name: str, problem: str) -> ConfigError:
        return config_error(f"{self.key}.{name}", problem)


def _peak_and_floor(s: _Spec) -> tuple[float, float]:
    max_lr, min_lr = s.lr("max_lr"), s.lr("min_lr")
    if max_lr <= 0:
        raise s.fail("max_lr", f"must be > 0, got {max_lr!r}")
    if min_lr > max_lr:
        raise s.fail("min_lr", f"must be <= max_lr ({max_lr!r}), got {min_lr!r}")
    return max_lr, min_lr


def _build_constant(s: _Spec, total: int) -> Schedule:
    lr = s.lr("lr")
    if lr <= 0:
        raise s.fail("lr", f"must be > 0, got {lr!r}")
    return functools.partial(shapes.constant, lr=lr)


def _build_warmup_constant(s: _Spec, total: int) -> Schedule:
    max_lr = s.lr("max_lr")
    if max_lr <= 0:
        raise s.fail("max_lr", f"must be > 0, got {max_lr!r}")
    return functools.partial(shapes.warmup_constant, max_lr=max_lr, warmup_steps=s.frac("warmup_frac") * total)


def _build_warmup_cosine(s: _Spec, total: int) -> Schedule:
    max_lr, min_lr = _peak_and_floor(s)
    warmup_frac = s.frac("warmup_frac")
    if warmup_frac >= 1.0:
        raise s.fail("warmup_frac", f"warmup must be shorter than the stage (a decay follows), got {warmup_frac!r}")
    return functools.partial(
        shapes.warmup_cosine, max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup_frac * total, total_steps=total
    )


def _build_infinite(s: _Spec, total: int) -> Schedule:
    max_lr, min_lr = _peak_and_floor(s)
    const_lr = s.lr("const_lr")
    if not (min_lr <= const_lr <= max_lr and const_lr > 0):
        raise s.fail("const_lr", f"must be > 0 and in [min_lr, max_lr] = [{min_lr!r}, {max_lr!r}], got {const_lr!r}")
    warmup_frac, cooldown_frac, anneal_frac = s.frac("warmup_frac"), s.frac("cooldown_frac"), s.frac("anneal_frac")
    if warmup_frac + cooldown_frac + anneal_frac > 1.0 + 1e-12:
        raise s.fail(
            "cooldown_frac",
            f"warmup_frac + cooldown_frac + anneal_frac = {warmup_frac + cooldown_frac + anneal_frac:g} "
            "exceeds the stage (must be <= 1)",
        )
    shape_name = s.choice("cooldown_shape", _COOLDOWN_SHAPES)
    alpha = s.number("alpha", 10.0)  # paper 1's timescale (§7.2)
    if alpha <= 0:
        raise s.fail("alpha", f"must be > 0, got {alpha!r}")
    cooldown: shapes.DecayShape = {
        "cosine": shapes.cosine_decay,
        "linear": shapes.linear_decay,
        "inverse_sqrt": functools.partial(shapes.inverse_sqrt_decay, alpha=alpha),
    }[shape_name]
    warmup, anneal = warmup_frac * total, anneal_frac * total
    return functools.partial(
        shapes.infinite,
        max_lr=max_lr,
        const_lr=const_lr,
        min_lr=min_lr,
        warmup_steps=warmup,
        cooldown_steps=cooldown_frac * total,
        # K is measured from the end of warmup, so the anneal A = T − W − K ends exactly at T.
        constant_end=max(total - warmup - anneal, 0.0),
        anneal_steps=anneal,
        cooldown=cooldown,
    )


def _build_exp_anneal(s: _Spec, total: int) -> Schedule:
    const_lr, min_lr = s.lr("const_lr"), s.lr("min_lr")
    if const_lr <= 0:
        raise s.fail("const_lr", f"must be > 0, got {const_lr!r}")
    if min_lr > const_lr:
        raise s.fail("min_lr", f"must be <= const_lr ({const_lr!r}), got {min_lr!r}")
    anneal_frac = s.frac("anneal_frac")
    if anneal_frac == 0:
        raise s.fail("anneal_frac", "must be > 0 for an anneal stage")
    return functools.partial(shapes.exp_anneal, const_lr=const_lr, min_lr=min_lr, anneal_steps=anneal_frac * total)


def _build_wsd(s: _Spec, total: int) -> Schedule:
    max_lr, min_lr = _peak_and_floor(s)
    warmup_frac, decay_frac = s.frac("warmup_frac"), s.frac("decay_frac")
    if warmup_frac + decay_frac > 1.0 + 1e-12:
        raise s.fail("decay_frac", f"warmup_frac + decay_frac = {warmup_frac + decay_frac:g} exceeds the stage")
    decay = _decay_shape(s, "decay_shape", _WSD_SHAPES, max_lr, min_lr)  # multistep: paper 2's multi-step PTFS
    return functools.partial(
        shapes.wsd,
        max_lr=max_lr,
        min_lr=min_lr,
        warmup_steps=warmup_frac * total,
        decay_steps=decay_frac * total,
        total_steps=total,
        decay=decay,
    )


def _build_repeated_cosine(s: _Spec, total: int) -> Schedule:
    max_lr, min_lr = _peak_and_floor(s)
    num_repeats = s.number("num_repeats")
    if num_repeats < 1 or num_repeats != int(num_repeats) or num_repeats > total:
        raise s.fail("num_repeats", f"must be an integer in [1, total_steps={total}], got {num_repeats!r}")
    warmup_frac = s.frac("warmup_frac")  # of each cycle, as in the authors' configs (W = 0.01·P)
    if warmup_frac >= 1.0:
        raise s.fail("warmup_frac", f"warmup must be shorter than a cycle, got {warmup_frac!r}")
    period = total / int(num_repeats)
    return functools.partial(
        shapes.repeated_cosine,
        max_lr=max_lr,
        min_lr=min_lr,
        warmup_steps=warmup_frac * period,
        period_steps=period,
        total_steps=total,
    )


def _multistep_shape(s: _Spec, max_lr: float, min_lr: float) -> shapes.DecayShape:
    fracs, factors = s.floats("step_fracs"), s.floats("step_factors")
    if len(fracs) != len(factors):
        raise s.fail("step_factors", f"needs one factor per entry of step_fracs ({len(fracs)}), got {len(factors)}")
    if any(not 0 <= f < 1 for f in fracs) or any(b <= a for a, b in zip(fracs, fracs[1:])):
        raise s.fail("step_fracs", f"must be strictly increasing in [0, 1), got {list(fracs)!r}")
    if any(not 0 < f <= 1 for f in factors) or any(b > a for a, b in zip(factors, factors[1:])):
        raise s.fail("step_factors", f"must be non-increasing in (0, 1], got {list(factors)!r}")
    if not math.isclose(max_lr * factors[-1], min_lr, rel_tol=1e-6):
        # A complete decay (paper 2, finding 2) ends at η_min; a gap would jump at the decay's end.
        raise s.fail("step_factors", f"last factor × max_lr = {max_lr * factors[-1]!r} must equal min_lr = {min_lr!r}")
    return functools.partial(shapes.multistep_decay, step_fracs=fracs, step_factors=factors)


#: Decay shapes by name; knee's exploit phase is a linear decay (Iyer et al.'s explore-exploit schedule).
_DECAYS: dict[str, shapes.DecayShape] = {
    "linear": shapes.linear_decay, "knee": shapes.linear_decay, "cosine": shapes.cosine_decay, "sqrt": shapes.sqrt_decay,
}  # fmt: skip


def _decay_shape(s: _Spec, key: str, options: tuple[str, ...], max_lr: float, min_lr: float) -> shapes.DecayShape:
    """The decay named by ``key`` (one of ``options``); ``multistep`` reads ``step_fracs``/``step_factors``."""
    name = s.choice(key, options)
    s.used.update({"step_fracs", "step_factors"})  # allowed in every preset, read only by multistep
    return _multistep_shape(s, max_lr, min_lr) if name == "multistep" else _DECAYS[name]


def _build_branch_decay(s: _Spec, total: int) -> Schedule:
    max_lr, min_lr = _peak_and_floor(s)
    decay_frac = s.frac("decay_frac")
    if decay_frac == 0:
        raise s.fail("decay_frac", "must be > 0: a branch must decay to min_lr")
    decay = _decay_shape(s, "shape", _BRANCH_SHAPES, max_lr, min_lr)
    return functools.partial(
        shapes.branch_decay, max_lr=max_lr, min_lr=min_lr, decay_steps=decay_frac * total, decay=decay
    )


def _build_cosine_cycles(s: _Spec, total: int) -> Schedule:
    max_lr, min_lr = _peak_and_floor(s)
    warmup_frac = s.frac("warmup_frac")  # of each cycle
    if warmup_frac >= 1.0:
        raise s.fail("warmup_frac", f"warmup must be shorter than a cycle, got {warmup_frac!r}")
    fracs = s.floats("cycle_fracs")
    if any(f <= 0 for f in fracs) or not math.isclose(sum(fracs), 1.0, rel_tol=1e-9):
        raise s.fail("cycle_fracs", f"must be positive shares of the stage summing to 1, got {list(fracs)!r}")
    cumulative = [sum(fracs[:i]) for i in range(len(fracs))]
    starts = tuple(round(c * total) for c in cumulative)
    if any(b <= a for a, b in zip(starts, (*starts[1:], total))):
        raise s.fail("cycle_fracs", f"every cycle needs at least one of the stage's {total} steps, got {list(fracs)!r}")
    return functools.partial(
        shapes.cosine_cycles, max_lr=max_lr, min_lr=min_lr, warmup_frac=warmup_frac, cycle_starts=starts,
        total_steps=total,
    )  # fmt: skip


_BUILDERS: dict[str, Callable[[_Spec, int], Schedule]] = {
    "constant": _build_constant,
    "warmup_constant": _build_warmup_constant,
    "warmup_cosine": _build_warmup_cosine,
    "infinite": _build_infinite,
    "exp_anneal": _build_exp_anneal,
    "wsd": _build_wsd,
    "repeated_cosine": _build_repeated_cosine,
    "branch_decay": _build_branch_decay,
    "cosine_cycles": _build_cosine_cycles,
}
assert _BUILDERS.keys() == SCHEDULES.keys()


def build_schedule(spec: Mapping[str, Any], total_steps: int, *, key: str = "schedule") -> Schedule:
    """Return ``f(step) -> absolute LR`` for a stage of ``total_steps`` optimizer steps.

    ``spec`` is a plain mapping (a dict or an OmegaConf DictConfig) with ``name`` ∈ ``SCHEDULES``
    and that schedule's parameters; ``key`` is the dotted config path used in error messages.
    The result is a ``functools.partial`` of a module-level function, so it pickles.
    """
    if not isinstance(spec, Mapping):
        raise config_error(key, f"must be a mapping with a 'name', got {type(spec).__name__}")
    name = spec.get("name")
    if name not in _BUILDERS:
        raise config_error(f"{key}.name", f"unknown schedule {name!r}; known: {', '.join(sorted(SCHEDULES))}")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise config_error(f"{key}.total_steps", f"must be an integer >= 1, got {total_steps!r}")
    s = _Spec(spec, key)
    schedule = _BUILDERS[name](s, total_steps)
    unknown = sorted(set(spec) - s.used)
    if unknown:
        raise config_error(f"{key}.{unknown[0]}", f"unknown key for '{name}'; expected {', '.join(sorted(s.used))}")
    return schedule


def schedule_preview(spec: Mapping[str, Any], total_steps: int) -> list[float]:
    """The LRs applied at steps 0 … total_steps − 1 (one per optimizer step of the stage)."""
    schedule = build_schedule(spec, total_steps)
    return [schedule(step) for step in range(total_steps)]
