"""Hydra registration: the two root schemas in the ConfigStore and the ``cpt_*`` resolvers the YAML uses."""

from __future__ import annotations

import os

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from cpt_experiments.config.schemas import EvaluateRoot, TrainRoot
from cpt_experiments.data_dir import default_data_dir


def register() -> None:
    """Store the root schemas as ``train_schema`` and ``evaluate_schema`` and register the ``cpt_data_dir``
    and ``cpt_pid`` resolvers (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainRoot)
    cs.store(name="evaluate_schema", node=EvaluateRoot)
    OmegaConf.register_new_resolver("cpt_data_dir", default_data_dir, replace=True)
    # Run directories carry the process id: two runs started in the same second must not share one.
    # Cached (like Hydra's `now`): a multirun copies the launching process's resolver cache into every
    # member's config, so joblib workers see the launcher's pid and the sweep keeps one directory.
    OmegaConf.register_new_resolver("cpt_pid", os.getpid, replace=True, use_cache=True)
    # Budgets that are differences of others (e.g. a split's main path = split − anneal): ${cpt_minus:a,b}.
    OmegaConf.register_new_resolver("cpt_minus", _minus, replace=True)
    # Budgets that are multiples of others (e.g. the budget axis: k x the cpu budgets): ${cpt_times:a,k}.
    OmegaConf.register_new_resolver("cpt_times", _times, replace=True)


def _minus(a: int, b: int) -> int:
    """``a - b`` for integer budgets (resolver ``cpt_minus``); anything else is an error naming both values."""
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (a, b)):
        raise ValueError(f"cpt_minus needs two integers, got {a!r} and {b!r}")
    return a - b


def _times(a: int, k: int) -> int:
    """``a * k`` for an integer budget and a positive integer multiplier (resolver ``cpt_times``)."""
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (a, k)) or k < 1:
        raise ValueError(f"cpt_times needs an integer budget and an integer multiplier >= 1, got {a!r} and {k!r}")
    return a * k
