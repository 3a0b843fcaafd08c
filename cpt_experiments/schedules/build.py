"""Pick a schedule's typed config by ``name`` (``parse_schedule``) and turn it into a callable for a stage.

``parse_schedule`` is the one place a schedule mapping (a ``config.ScheduleConfig`` or any mapping with a
``name``) becomes a checked ``ScheduleSpec``: an unknown name, a key the schedule does not take or a
missing required key raises one ``ConfigError`` line naming it (``<key>.<field>: ...``); each class then
checks its own values (``schedules.specs``, ``schedules.decaying``). ``build_schedule`` and
``schedule_preview`` are thin wrappers for callers holding a mapping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Union

from cpt_experiments.errors import config_error
from cpt_experiments.schedules import decaying, shapes, specs
from cpt_experiments.schedules.specs import Schedule, ScheduleSpec

if TYPE_CHECKING:
    from cpt_experiments.config import ScheduleConfig

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
"""Name → pure function ``f(step, *, params) -> LR``; the schedule's ``build`` binds the params."""

SPECS: dict[str, type[ScheduleSpec]] = {
    cls.NAME: cls
    for cls in (
        specs.Constant, specs.WarmupConstant, decaying.WarmupCosine, decaying.Infinite, specs.ExpAnneal,
        decaying.Wsd, decaying.RepeatedCosine, decaying.BranchDecay, decaying.CosineCycles,
    )
}  # fmt: skip
"""Name → the typed config of that schedule."""
assert SPECS.keys() == SCHEDULES.keys()

ScheduleInput = Union["ScheduleConfig", Mapping[str, Any]]


def parse_schedule(cfg: ScheduleInput, key: str = "schedule") -> ScheduleSpec:
    """The typed schedule of ``cfg`` (its ``name`` picks the class; keys set to null are unused).

    ``key`` is the dotted config path of the schedule node, used in every error message (also in the
    ones ``build`` raises later).
    """
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        raw = dataclasses.asdict(cfg)
    elif isinstance(cfg, Mapping):
        raw = dict(cfg)
    else:
        raise config_error(key, f"must be a mapping with a 'name', got {type(cfg).__name__}")
    raw = {k: v for k, v in raw.items() if v is not None}
    name = raw.pop("name", None)
    cls = SPECS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise config_error(f"{key}.name", f"unknown schedule {name!r}; known: {', '.join(sorted(SPECS))}")
    allowed = cls.params()
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise config_error(
            f"{key}.{unknown[0]}", f"unknown key for '{name}'; expected {', '.join(sorted({'name', *allowed}))}"
        )
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in raw:
            raise config_error(f"{key}.{f.name}", f"missing (required by '{name}')")
    return cls(key=key, **raw)


def build_schedule(spec: ScheduleSpec | ScheduleInput, total_steps: int, *, key: str = "schedule") -> Schedule:
    """``f(step) -> absolute LR`` for a stage of ``total_steps`` optimizer steps (a picklable partial).

    ``spec`` is a typed schedule (whose errors name the key it was parsed with) or a mapping for
    ``parse_schedule`` (``key`` names it in errors).
    """
    typed = spec if isinstance(spec, ScheduleSpec) else parse_schedule(spec, key)
    return typed.build(total_steps)


def schedule_preview(spec: ScheduleSpec | ScheduleInput, total_steps: int) -> list[float]:
    """The LRs applied at steps 0 … total_steps − 1 (one per optimizer step of the stage)."""
    schedule = build_schedule(spec, total_steps)
    return [schedule(step) for step in range(total_steps)]
