"""Paper-style figures rebuilt from the results tables only (never checkpoints, never torch).

Each module ``cpt_experiments.figures.<name>`` has ``make(results_dir) -> Figure``; build them
all with ``python -m cpt_experiments.figures --results DIR``.
"""

from __future__ import annotations

from cpt_experiments.errors import DataError

#: Figure module names, in the order the CLI builds them.
FIGURES = (
    "loss_curves",
    "replay_sweep",
    "union_baseline",
    "rewarm_sweep",
    "infinite_schedules",
    "path_switching",
    "path_switching_families",
    "benchmarks",
    "regime_gap",
    "shift_continuum",
    "paper1_claims",
)


#: Paper 2's figures (version updates).
PAPER2_FIGURES = ("path_switching", "path_switching_families")
#: Paper 1's figures (re-warming, replay, the union baseline, infinite schedules, benchmarks).
PAPER1_FIGURES = (
    "loss_curves", "replay_sweep", "rewarm_sweep", "union_baseline", "infinite_schedules", "benchmarks", "regime_gap",
    "shift_continuum", "paper1_claims",
)  # fmt: skip


class MissingFigureData(DataError):
    """A figure's input is absent from the results tables; the message names the table/role/experiment."""
