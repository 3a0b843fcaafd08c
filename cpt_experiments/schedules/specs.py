"""The LR schedules as small typed configs: one frozen dataclass per schedule name (torchtitan's style).

Each class checks its own fields once, when it is built (``schedules.parse_schedule`` picks the class by
``name``), with one-line ``ConfigError``s naming ``<key>.<field>``; ``build(total_steps)`` turns its
fractions of the stage into step counts and returns a picklable ``functools.partial`` over
``schedules.shapes`` (the only checks left there need the stage's length). ``spec()`` is the mapping the
stage hash covers: exactly the keys the config set, with their values as given; ``peak_lr`` is the LR the
schedule is scaled by (η_max of the runs table).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cpt_experiments.errors import ConfigError, config_error
from cpt_experiments.schedules import shapes

Schedule = Callable[[int], float]


@dataclass(frozen=True, kw_only=True)
class ScheduleSpec:
    """A checked schedule; subclasses name it (``NAME``), hold its parameters and bind them in ``_bind``."""

    NAME: ClassVar[str]
    PEAK: ClassVar[str] = "max_lr"  # the field holding the LR the schedule is scaled by
    key: str = field(default="schedule", compare=False, repr=False)  # dotted config path, for error messages

    def _fail(self, name: str, problem: str) -> ConfigError:
        return config_error(f"{self.key}.{name}", problem)

    def _number(self, name: str) -> float:
        value = getattr(self, name)
        if value is None:
            raise self._fail(name, f"missing (required by '{self.NAME}')")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self._fail(name, f"must be a finite number, got {value!r}")
        return float(value)

    def _lr(self, name: str, positive: bool = False) -> float:
        value = self._number(name)
        if value < 0:
            raise self._fail(name, f"learning rate must be >= 0, got {value!r}")
        if positive and value <= 0:
            raise self._fail(name, f"must be > 0, got {value!r}")
        return value

    def _frac(self, name: str) -> float:
        value = self._number(name)
        if not 0.0 <= value <= 1.0:
            raise self._fail(name, f"fraction must be in [0, 1], got {value!r}")
        return value

    def _choice(self, name: str, options: tuple[str, ...]) -> str:
        value = getattr(self, name)
        if value not in options:
            raise self._fail(name, f"unknown {value!r}; choose one of {', '.join(options)}")
        return value

    def _floats(self, name: str) -> tuple[float, ...]:
        """A non-empty list of numbers; stored as a tuple (the spec is frozen), returned as floats."""
        value = getattr(self, name)
        if value is None:
            raise self._fail(name, f"missing (required by '{self.NAME}')")
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise self._fail(name, f"must be a list of numbers, got {value!r}")
        out = tuple(value)
        if not out or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in out):
            raise self._fail(name, f"must be a non-empty list of numbers, got {list(out)!r}")
        object.__setattr__(self, name, out)
        return tuple(float(v) for v in out)

    @classmethod
    def params(cls) -> set[str]:
        """The parameter keys this schedule takes (``name`` aside)."""
        return {f.name for f in dataclasses.fields(cls)} - {"key"}

    @property
    def peak_lr(self) -> float:
        """The LR the schedule is scaled by: max_lr (lr for constant, const_lr for exp_anneal), as configured."""
        return getattr(self, self.PEAK)

    def spec(self) -> dict[str, Any]:
        """The mapping the stage hash covers: ``name`` and every parameter the config set (lists as lists)."""
        out: dict[str, Any] = {"name": self.NAME}
        for f in dataclasses.fields(self):  # field order, so loggers show the keys alike in every run
            value = getattr(self, f.name)
            if f.name != "key" and value is not None:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def build(self, total_steps: int) -> Schedule:
        """``f(step) -> absolute LR`` for a stage of ``total_steps`` optimizer steps (a picklable partial)."""
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise self._fail("total_steps", f"must be an integer >= 1, got {total_steps!r}")
        return self._bind(total_steps)

    def _bind(self, total: int) -> Schedule:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Constant(ScheduleSpec):
    NAME: ClassVar[str] = "constant"
    PEAK: ClassVar[str] = "lr"
    lr: float

    def __post_init__(self) -> None:
        self._lr("lr", positive=True)

    def _bind(self, total: int) -> Schedule:
        return functools.partial(shapes.constant, lr=float(self.lr))


@dataclass(frozen=True, kw_only=True)
class WarmupConstant(ScheduleSpec):
    NAME: ClassVar[str] = "warmup_constant"
    max_lr: float
    warmup_frac: float

    def __post_init__(self) -> None:
        self._lr("max_lr", positive=True)
        self._frac("warmup_frac")

    def _bind(self, total: int) -> Schedule:
        return functools.partial(
            shapes.warmup_constant, max_lr=float(self.max_lr), warmup_steps=float(self.warmup_frac) * total
        )


@dataclass(frozen=True, kw_only=True)
class ExpAnneal(ScheduleSpec):
    """Paper 1's exponential anneal from ``const_lr`` to ``min_lr`` (the deployable branch of an infinite schedule)."""

    NAME: ClassVar[str] = "exp_anneal"
    PEAK: ClassVar[str] = "const_lr"
    const_lr: float
    min_lr: float
    anneal_frac: float

    def __post_init__(self) -> None:
        const_lr, min_lr = self._lr("const_lr", positive=True), self._lr("min_lr")
        if min_lr > const_lr:
            raise self._fail("min_lr", f"must be <= const_lr ({const_lr!r}), got {min_lr!r}")
        if self._frac("anneal_frac") == 0:
            raise self._fail("anneal_frac", "must be > 0 for an anneal stage")

    def _bind(self, total: int) -> Schedule:
        return functools.partial(
            shapes.exp_anneal, const_lr=float(self.const_lr), min_lr=float(self.min_lr),
            anneal_steps=float(self.anneal_frac) * total,
        )  # fmt: skip
