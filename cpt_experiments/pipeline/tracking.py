"""What the extra loggers (W&B, TensorBoard) are told about a stage: its cell, tags and defining config.

A W&B ``group`` is the cell without the seed (experiment, variant, and the hash of the config with the
seed left out), so the seeds of one setting group together; ``job_type`` is the stage role; tags name
the shift, replay ratio and seed. The config is what defines the stage, not every key of the suite.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cpt_experiments.pipeline import records
from cpt_experiments.pipeline.stages import Stage


@dataclass(frozen=True)
class StageMeta:
    """Names and metadata of one stage's logger runs."""

    run_id: str
    stage: str
    role: str
    group: str
    tags: tuple[str, ...]
    hparams: dict[str, Any]  # flat "a/b" keys: what defines the stage


def cell_group(plain: Mapping[str, Any]) -> str:
    """``<experiment>[/<variant>]-<hash7>``: equal for every seed of one setting, different across settings."""
    exp = plain.get("experiment") or {}
    name = str(exp.get("name", "unknown")) + (f"/{exp['variant']}" if exp.get("variant") else "")
    return f"{name}-{records.config_hash({k: v for k, v in plain.items() if k != 'seed'})[:7]}"


def stage_tags(plain: Mapping[str, Any], stage: Stage) -> tuple[str, ...]:
    """``shift:<name>``, ``replay:<ratio>``, ``seed:<n>`` (W&B filters runs by tag)."""
    shift = (plain.get("shift") or {}).get("name", "none")
    return (f"shift:{shift}", f"replay:{stage.replay.ratio:g}", f"seed:{plain.get('seed')}")


def stage_meta(run_id: str, plain: Mapping[str, Any], stage: Stage, stage_hash: str) -> StageMeta:
    """Logger metadata of ``stage``: the stage's own spec plus the settings that shape its training."""
    exp = plain.get("experiment") or {}
    defining = {
        "stage": {**asdict(stage), "schedule": stage.schedule.spec(), "hash": stage_hash},  # the spec the hash covers
        "experiment": {"name": exp.get("name"), "variant": exp.get("variant")},
        "seed": plain.get("seed"), "scale": plain.get("scale"), "shift": (plain.get("shift") or {}).get("name"),
        "model": plain.get("model"), "optim": plain.get("optim"), "tokenizer": plain.get("tokenizer"),
        "train": {k: (plain.get("train") or {}).get(k) for k in ("global_batch_windows", "micro_batch")},
        "trainer": {k: (plain.get("trainer") or {}).get(k) for k in ("accelerator", "devices", "strategy", "precision")},
        "corpora": {r: (plain.get("corpora") or {}).get(r, {}).get("name") for r in sorted({*stage.data, *stage.replay.sources})},
    }  # fmt: skip
    return StageMeta(run_id, stage.name, stage.role, cell_group(plain), stage_tags(plain, stage), flat(defining))


def flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``: hyperparameters as loggers display them."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flat(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out
