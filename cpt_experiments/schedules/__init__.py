"""Learning-rate schedules of both papers as pure functions of the step (no torch).

Conventions (one place; ``tests/test_schedules.py`` checks each):

* ``step`` = number of completed optimizer steps **within the stage**, 0-based. ``f(step)`` is the
  LR used by the update that takes the model from ``step`` to ``step + 1``, so a stage of T steps
  applies ``f(0) … f(T − 1)``. The counter restarts at 0 in every stage, as in paper 1's training code
  (paper 1, §5.2).
* Every function returns the **absolute** LR (the papers sweep η_max = 0.5×/1×/2× the peak).
  The callback multiplies it by an optional per-param-group ``lr_scale``.
* Warmup is linear **from 0**: ``f(n) = η_max·n/W`` for ``0 ≤ n ≤ W`` (so ``f(0) = 0`` and
  ``f(W) = η_max`` when W is whole); W = ``warmup_frac``·T is kept as a real number. With W = 0
  there is no warmup and ``f(0)`` is the first value of the next phase.
* A decay phase from ``hi`` to ``lo`` that starts at step b and lasts L steps has progress
  ``s = (n − b)/L``; it is ``hi`` at s = 0 and reaches ``lo`` exactly at s = 1 (n = b + L).
* Past the end of the schedule (n ≥ T, or past a branch's decay) the final LR is held: η_min for
  decaying schedules, η_const for an infinite schedule without anneal, η_max for ``warmup_constant``.
* Stage-length parameters in a spec are fractions of the stage; a typed schedule's ``build(total_steps)``
  converts them with the stage's ``total_steps`` (derived by the caller from the token budget).
* Each schedule is a small typed config (``parse_schedule`` picks it by ``name``: ``specs``, ``decaying``).

Formulas: paper 1, §5 and §7.2–7.4 (as in the authors' GPT-NeoX configs), and paper 2's main path and
branches (shapes where the paper gives none are our reading, stated in the README).
"""

from cpt_experiments.schedules.build import SCHEDULES, SPECS, build_schedule, parse_schedule, schedule_preview
from cpt_experiments.schedules.shapes import (
    branch_decay,
    constant,
    exp_anneal,
    infinite,
    repeated_cosine,
    warmup_constant,
    warmup_cosine,
    wsd,
)
from cpt_experiments.schedules.specs import Schedule, ScheduleSpec

__all__ = [
    "SCHEDULES",
    "SPECS",
    "Schedule",
    "ScheduleSpec",
    "branch_decay",
    "build_schedule",
    "constant",
    "exp_anneal",
    "infinite",
    "parse_schedule",
    "repeated_cosine",
    "schedule_preview",
    "warmup_constant",
    "warmup_cosine",
    "wsd",
]
