"""A run's provenance and its results rows: config hash, git state, config snapshots, runs/curves rows.

Every row can be traced back: ``config_hash`` names ``<results_dir>/configs/<config_hash>.yaml``
(the resolved config, git commit and stage hashes of the run, written next to the tables), and
the runs row itself carries what shaped the stage (schedule with the LR it really ends at,
optimizer, batch, context, which corpus filled each role and its content hash, tokenizer hash).
Writing into the repository's ``results/`` from a tree with uncommitted changes is refused
unless ``allow_dirty_results`` is set, and that flag is recorded in the row.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cpt_experiments.atomic import atomic_write_text
from cpt_experiments.config import SPEED_ONLY_KEYS, CorpusConfig
from cpt_experiments.errors import config_error
from cpt_experiments.files import REPO_ROOT, probe_writable
from cpt_experiments.hashing import content_hash
from cpt_experiments.pipeline.context import RunContext
from cpt_experiments.pipeline.stage_cache import StageDir, StageResult
from cpt_experiments.pipeline.stage_plan import StagePlan
from cpt_experiments.pipeline.stages import Stage, lineage
from cpt_experiments.results import store
from cpt_experiments.results.collect import curve_rows

log = logging.getLogger(__name__)

#: Committed reproductions live here; writing into it needs a clean tree.
COMMITTED_RESULTS = REPO_ROOT / "results"
#: Top-level keys that do not change what is trained, hence not a run's identity.
NOT_IDENTITY = ("paths", "hydra", "logger", "callbacks", "evaluation", "allow_dirty_results", "dry_run")
#: Schema keys added after results were committed, left out of the identity while null (their default, the
#: behaviour before they existed), so a rerun of an old config keeps its run_id; a set value names the run.
NULL_IS_ABSENT = frozenset({"only", "chain_schedule", "cycle_fracs"})


def _drop_null_new_keys(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _drop_null_new_keys(v) for k, v in node.items() if not (k in NULL_IS_ABSENT and v is None)}
    if isinstance(node, list):
        return [_drop_null_new_keys(v) for v in node]
    return node


def output_relative(path: str | os.PathLike, output_dir: str | os.PathLike) -> str:
    """``path`` relative to ``paths.output_dir`` when inside it (``stages/<hash>/final``), so committed tables
    hold no machine's absolute paths; else absolute (a stage cache elsewhere). ``checkpoint_path`` inverts it."""
    p, out = Path(path).resolve(), Path(output_dir).resolve()
    return str(p.relative_to(out)) if p.is_relative_to(out) else str(p)


def checkpoint_path(value: str, output_dir: str | os.PathLike) -> Path:
    """A table's checkpoint path: relative ones are under ``paths.output_dir`` (older rows are absolute)."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(output_dir) / p


def config_hash(plain_cfg: Mapping[str, Any]) -> str:
    """sha256 of the resolved config without paths, loggers, evaluation settings, the speed-only keys
    (``config.SPEED_ONLY_KEYS``: attention kernel, compile, checkpointing) and null ``NULL_IS_ABSENT`` keys.

    It names a config, not a result: the same config on other corpora (``paths.data_dir``) has the
    same hash. It keys the stage cache's ``trained_by`` and the provisional run id of a run that
    failed before its stages were hashed; a planned run is named by ``run_hash``.
    """
    material = _drop_null_new_keys({k: v for k, v in plain_cfg.items() if k not in NOT_IDENTITY})
    for dotted in SPEED_ONLY_KEYS:
        group, key = dotted.split(".")
        if isinstance(material.get(group), Mapping) and key in material[group]:
            material[group] = {k: v for k, v in material[group].items() if k != key}
    return content_hash(material)


def run_hash(plain_cfg: Mapping[str, Any], stage_hashes: Mapping[str, str]) -> str:
    """sha256 of ``config_hash`` and every stage hash: the run's identity (its ``config_hash`` column).

    Stage hashes cover what the config leaves out: the corpora's content (their token caches' keys
    hash the source files), the tokenizer and the parent chain. So the same experiment on other data
    gets another run id, and never replaces this run's rows. The stage hashes themselves are unchanged.
    """
    material = {"config": config_hash(plain_cfg), "stage_hashes": dict(sorted(stage_hashes.items()))}
    return content_hash(material)


def git_state(root: Path | None = None) -> tuple[str, bool]:
    """(HEAD commit, whether the tree has changes outside ``results/``); ("", False) outside git.

    Changes under ``results/`` do not count: a sweep writing its rows there would otherwise make
    its own next member dirty.
    """
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", ":(exclude)results"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "", False
    return sha, bool(status)


def is_under(path: str | Path, root: str | Path) -> bool:
    """True if ``path`` lies inside ``root`` (both resolved)."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return False
    return True


def check_results_dir(results_dir: str | Path, allow_dirty: bool, root: Path | None = None) -> str:
    """The git commit to record (``+dirty`` when dirty); refuses a dirty write into committed results."""
    root = root or REPO_ROOT
    sha, dirty = git_state(root)
    if dirty and not allow_dirty and is_under(results_dir, root / "results"):
        raise config_error(
            "paths.results_dir",
            f"{results_dir} is under results/ but the tree has uncommitted changes; commit first "
            "(committed rows must come from a clean commit) or set allow_dirty_results=true",
        )
    return sha + ("+dirty" if dirty else "")


def check_writable(*dirs: str | Path) -> None:
    """Each directory exists (or is created) and takes a file, before any work; one line naming the key."""
    for key, d in zip(("paths.output_dir", "paths.results_dir", "paths.stage_dir", "paths.cache_dir"), dirs):
        try:
            probe_writable(d)
        except OSError as exc:
            raise config_error(key, f"{Path(d)} is not writable ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class RunInfo:
    """What every results row of one run shares."""

    results_dir: Path
    run_id: str
    config_hash: str
    git_commit: str
    experiment: str
    variant: str | None
    ctx: RunContext
    provisional_id: str | None = None  # the id a failure before planning gave this run (superseded by its rows)


def write_config_snapshot(info: RunInfo, plain_cfg: Mapping[str, Any], stage_hashes: Mapping[str, str]) -> Path:
    """``<results_dir>/configs/<config_hash>.yaml``: the resolved config a run's rows came from."""
    doc = {
        "run_id": info.run_id,
        "config_hash": info.config_hash,
        "git_commit": info.git_commit,
        "stage_hashes": dict(stage_hashes),
        "config": {k: v for k, v in plain_cfg.items() if k not in NOT_IDENTITY},
    }
    path = Path(info.results_dir) / "configs" / f"{info.config_hash}.yaml"
    atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def domains_of(stage: Stage, stages: Mapping[str, Stage]) -> tuple[list[str], list[str]]:
    """(old roles, new roles) of a stage: old = the data of the pre-training its chain starts from.

    A root stage other than the first pre-training stage (e.g. the union baseline) is compared
    with that pre-training stage's data, so the union of D0 and D1 has D1 as its new data.
    """
    root = lineage(stages, stage.name)[0]
    if root.name == stage.name:
        first = next((s for s in stages.values() if s.parent is None and s.role == "pretrain"), root)
        root = first
    old = list(root.data)
    return old, [r for r in stage.data if r not in old]


def shift_of(old: list[str], new: list[str], corpora: Mapping[str, CorpusConfig]) -> str:
    """Paper 1's shift strength: ``strong`` if a new corpus is in another language than the old
    data (English -> German), ``weak`` if it shares the language, ``none`` without new data."""
    if not new:
        return "none"
    old_langs = {corpora[r].lang for r in old}
    return "strong" if any(corpora[r].lang not in old_langs for r in new) else "weak"


def run_row(
    info: RunInfo,
    stage: Stage,
    stages: Mapping[str, Stage],
    sd: StageDir,
    plan: StagePlan,
    status: str,
    result: StageResult,
    cumulative: tuple[int, float],
    parent_hash: str | None,
) -> dict[str, Any]:
    """The ``runs`` row of one stage (see results/README.md for every column)."""
    cfg, ctx = info.ctx.cfg, info.ctx
    old, new = domains_of(stage, stages)
    sched = stage.schedule.spec()
    read = sorted({*stage.data, *stage.replay.sources})
    return {
        "run_id": info.run_id, "experiment": info.experiment, "stage": stage.name, "parent_stage": stage.parent,
        "stage_hash": sd.hash, "parent_hash": parent_hash, "role": stage.role, "status": status,
        "variant": info.variant, "shift": shift_of(old, new, cfg.corpora),
        "old_corpus": ",".join(old), "new_corpus": ",".join(new) or None,
        "old_domain": old[0], "new_domain": new[0] if new else old[0],
        "corpora": ",".join(f"{r}={ctx.corpus_id(r)}" for r in read),
        "replay_ratio": stage.replay.ratio, "replay_mode": stage.replay.mode if stage.replay.active else "none",
        "data_windows": None if stage.windows == "all" else stage.windows,  # empty = all, as before the option
        "init_from": stage.init_from, "optimizer_policy": stage.optimizer,
        "schedule": sched["name"], "eta_max": stage.schedule.peak_lr,
        "eta_min": sched.get("min_lr"), "eta_const": sched.get("const_lr"), "warmup_frac": sched.get("warmup_frac"),
        "eta_end": float(plan.schedule(plan.steps - 1)),
        "adam_beta1": cfg.optim.betas[0], "adam_beta2": cfg.optim.betas[1], "adam_eps": cfg.optim.eps,
        "weight_decay": cfg.optim.weight_decay, "grad_clip": cfg.optim.grad_clip_norm,
        "global_batch_windows": ctx.geometry.global_batch_windows, "seq_len": ctx.geometry.seq_len,
        "seed": cfg.seed, "scale": cfg.scale, "model": cfg.model.name, "version": stage.version,
        "params": ctx.params,
        "params_non_embedding": ctx.params_non_embedding,
        "tokenizer_hash": ctx.tokenizer_hash[:16],
        "stage_tokens": result.tokens, "cumulative_tokens": cumulative[0],
        "stage_flops": result.flops, "cumulative_flops": cumulative[1],
        "steps": result.steps, "wall_s": result.wall_s,
        "config_hash": info.config_hash, "git_commit": info.git_commit, "dirty_allowed": cfg.allow_dirty_results,
        "checkpoint": output_relative(sd.final_dir, cfg.paths.output_dir), "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


def append_stage_rows(
    info: RunInfo, row: Mapping[str, Any], sd: StageDir, final_val: Mapping[str, Any], tokens_before: int
) -> None:
    """Append the stage's ``runs`` row and its ``curves`` rows (replacing earlier ones of this run and stage;
    its failed rows, and those of the run's provisional id, are superseded)."""
    store.append(info.results_dir, "runs", [row], supersedes=[info.provisional_id] if info.provisional_id else ())
    rows = curve_rows(
        info.run_id,
        str(row["stage"]),
        sd.log_dir,
        tokens_before=tokens_before,
        tokens_per_step=info.ctx.geometry.tokens_per_step,
        final_step=int(row["steps"]),
        final_val=final_val,
    )
    if rows:
        store.append(info.results_dir, "curves", rows)
