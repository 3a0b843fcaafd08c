"""Run an experiment: a stage graph, trained in topological order through the stage cache.

``run_experiment(cfg)`` resolves the composed Hydra config, builds the tokenizer and token
caches, hashes every stage (spec + context + parent hash), trains or reuses each stage, measures
its final loss on every domain of the experiment, and appends ``runs`` and ``curves`` rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from cpt_experiments import results
from cpt_experiments.collect import curve_rows
from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.token_cache import prepare_corpora
from cpt_experiments.data.tokenizer import get_tokenizer, tokenizer_hash
from cpt_experiments.errors import config_error
from cpt_experiments.loggers import extra_loggers
from cpt_experiments.model import load_pretrained, resolve_vocab_size
from cpt_experiments.schedules import build_schedule
from cpt_experiments.stage_cache import StageDir, stage_dir
from cpt_experiments.stage_data import REPLAY_PREFIX, Geometry, PlanBuilder
from cpt_experiments.stage_runner import StageJob, train_stage
from cpt_experiments.stages import Stage, canonical_json, parse_graph, stage_hash, union_baseline
from cpt_experiments.validation import domain_losses, make_valset

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What one ``train`` call did: per stage, its hash, status and final per-domain losses."""

    run_id: str
    roles: list[str] = field(default_factory=list)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def trained(self) -> list[str]:
        return [n for n, s in self.stages.items() if s["status"] == "done"]


def build_stages(exp: Mapping[str, Any]) -> dict[str, Stage]:
    """Parse the experiment's stages and add the derived union baseline, if requested."""
    stages = parse_graph(exp.get("stages") or {})
    union = exp.get("union")
    if union:
        leaf = union.get("leaf")
        if leaf not in stages:
            raise config_error("experiment.union.leaf", f"unknown stage {leaf!r}")
        name = union.get("name", "union")
        if name in stages:
            raise config_error("experiment.union.name", f"stage {name!r} already exists")
        stages[name] = union_baseline(stages, leaf, union.get("schedule") or stages[leaf].schedule, name=name)
    return stages


def config_hash(c: Mapping[str, Any]) -> str:
    """Hash of the resolved config minus paths and launcher settings (names the run)."""
    material = {k: v for k, v in c.items() if k not in ("paths", "hydra", "logger")}
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()


def git_commit() -> str:
    """The suite's git commit (with ``+dirty`` if the tree has changes), or empty outside git."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return sha + ("+dirty" if dirty else "")


def _roles(stages: Mapping[str, Stage]) -> list[str]:
    roles: list[str] = []
    for s in stages.values():
        for r in [*s.data, *s.replay.sources]:
            if r not in roles:
                roles.append(r)
    return roles


def validate_before_training(stages: Mapping[str, Stage], plans: PlanBuilder, geometry: Geometry, vocab_size: int) -> None:
    """Fail on any bad stage (budget, mixture, schedule, init checkpoint) before training anything."""
    for name, stage in stages.items():
        key = f"experiment.stages.{name}"
        steps = len(plans.plan(name)) // geometry.global_batch_windows
        build_schedule(stage.schedule, steps, key=f"{key}.schedule")
        if stage.init_from:
            check_init_checkpoint(stage.init_from, vocab_size, f"{key}.init_from")


def check_init_checkpoint(name_or_path: str, vocab_size: int, key: str) -> None:
    """The init checkpoint exists (local dir or hub id) and its embeddings fit the tokenizer."""
    from transformers import AutoConfig

    try:
        hf_cfg = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise config_error(key, f"init checkpoint {name_or_path!r} not found: {first}") from None
    if getattr(hf_cfg, "vocab_size", vocab_size) < vocab_size:
        raise config_error(key, f"tokenizer has {vocab_size} tokens but checkpoint {name_or_path!r} has {hf_cfg.vocab_size} embeddings")


def run_experiment(cfg: DictConfig) -> RunSummary:
    """Train (or reuse) every stage of ``cfg.experiment``; append results rows; return a summary."""
    c = OmegaConf.to_container(cfg, resolve=True)
    exp = c.get("experiment")
    if not exp:
        raise config_error("experiment", "choose an experiment preset, e.g. experiment=quickstart")
    if c["train"].get("torch_threads"):
        torch.set_num_threads(int(c["train"]["torch_threads"]))
    stages = build_stages(exp)
    roles = _roles(stages)
    for s in stages.values():
        for r in [*s.data, *s.replay.sources]:
            if r not in c["corpora"]:
                raise config_error(f"experiment.stages.{s.name}", f"unknown corpus role {r!r} (known: {', '.join(c['corpora'])})")
    paths = {k: Path(v) for k, v in c["paths"].items()}
    tok_cfg = c["tokenizer"]
    train_role = tok_cfg.get("train_corpus")
    tok_spec = CorpusSpec.from_config(c["corpora"][train_role], key=f"corpora.{train_role}") if train_role else None
    tokenizer = get_tokenizer(tok_cfg, tok_spec, paths["data_dir"], paths["cache_dir"])
    vocab_size = resolve_vocab_size(c["model"], len(tokenizer))
    token_files = prepare_corpora(c["corpora"], tokenizer, paths["data_dir"], paths["cache_dir"], roles=roles)
    geometry = Geometry(int(c["model"]["seq_len"]), int(c["train"]["global_batch_windows"]))
    seed = int(c["seed"])
    tok_hash = tokenizer_hash(tokenizer)

    hashes: dict[str, str] = {}
    for s in stages.values():
        context = {
            "model": c["model"], "optim": c["optim"], "tokenizer": tok_hash, "seed": seed,
            "corpora": {r: token_files[r]["train"].manifest["cache_key"]
                        for r in sorted({*s.data, *s.replay.sources})},
            "seq_len": geometry.seq_len, "global_batch_windows": geometry.global_batch_windows,
            "precision": c["trainer"].get("precision"),
        }
        hashes[s.name] = stage_hash(s, context, hashes[s.parent] if s.parent else None)

    train_tokens = {r: token_files[r]["train"].tokens for r in roles}
    plans = PlanBuilder(stages, hashes, train_tokens, geometry, seed)
    validate_before_training(stages, plans, geometry, vocab_size)
    val_roles = [r for r in roles if "validation" in token_files[r]]
    val_tokens = {r: token_files[r]["validation"].tokens for r in val_roles}
    valsets = {r: make_valset(val_tokens[r], geometry.seq_len, int(c["train"]["val_windows"]), tokenizer) for r in val_roles}

    cfg_hash = config_hash(c)
    rid = results.run_id(exp["name"], seed, cfg_hash)
    info = RunInfo(paths["results_dir"], c, rid, cfg_hash, git_commit(), geometry)
    summary = RunSummary(rid, roles)
    cumulative: dict[str, tuple[int, float]] = {}
    loggers_cfg = c.get("logger") or {}
    for name, stage in stages.items():
        plan = plans.plan(name)
        steps = len(plan) // geometry.global_batch_windows
        sd = stage_dir(paths["stage_dir"], hashes[name])
        parent_sd = stage_dir(paths["stage_dir"], hashes[stage.parent]) if stage.parent else None
        tokens_before = cumulative[stage.parent][0] if stage.parent else 0
        sources = {n: train_tokens[n.removeprefix(REPLAY_PREFIX)] for n in plan.names}
        job = StageJob(
            stage=stage, stage_hash=hashes[name], sd=sd, parent_sd=parent_sd,
            datamodule_kwargs=dict(
                # Validation runs in DomainValidation on `valsets`; Lightning's loop is off, so no val loaders.
                train_sources=sources, plan=plan, val_sources={}, seq_len=geometry.seq_len,
                micro_batch=int(c["train"]["micro_batch"]), val_windows=int(c["train"]["val_windows"]),
                num_workers=int(c["train"].get("num_workers", 0)),
            ),
            steps=steps, tokens_per_step=geometry.tokens_per_step, tokens_before=tokens_before,
            model_cfg=c["model"], optim_cfg=c["optim"], trainer_cfg=c["trainer"], train_cfg=c["train"],
            tokenizer=tokenizer, valsets=valsets, vocab_size=vocab_size, seed=seed,
            spec={"stage": stage.name, "hash": hashes[name], "parent_hash": hashes.get(stage.parent or ""),
                  "experiment": exp["name"], "config": c},
            extra_loggers=extra_loggers(loggers_cfg, run_name=f"{rid}-{name}", save_dir=sd.root),
        )
        outcome = train_stage(job)
        model = load_pretrained(sd.final_dir, model_cfg=c["model"], vocab_size=vocab_size)
        final_val = domain_losses(model, valsets)
        done = outcome.summary
        stage_flops = float(done.get("flops", 0.0))
        before_flops = cumulative[stage.parent][1] if stage.parent else 0.0
        cumulative[name] = (tokens_before + int(done["tokens"]), before_flops + stage_flops)
        status = "done" if outcome.status == "trained" else "reused"
        summary.stages[name] = {"hash": hashes[name], "status": status, "final_val": final_val, "dir": str(sd.root),
                                "checkpoint": str(sd.final_dir), "evaluate": stage.evaluate}
        _append_rows(info, stage, sd, status, done, final_val, tokens_before, cumulative[name])
    return summary


def shift_of(corpora: Mapping[str, Any], old_role: str, new_roles: list[str]) -> str:
    """Paper 1's shift strength of a stage: ``strong`` if a new corpus is in another language than
    the old one (English -> German), ``weak`` if new data share its language, ``none`` without new data."""
    if not new_roles:
        return "none"
    old_lang = corpora.get(old_role, {}).get("lang")
    return "strong" if any(corpora[r].get("lang") != old_lang for r in new_roles) else "weak"


@dataclass(frozen=True)
class RunInfo:
    """What every results row of one run shares."""

    results_dir: Path
    config: Mapping[str, Any]  # resolved
    run_id: str
    config_hash: str
    git_commit: str
    geometry: Geometry


def _append_rows(info: RunInfo, stage: Stage, sd: StageDir, status: str, done: Mapping[str, Any],
                 final_val: Mapping[str, Any], tokens_before: int, cumulative: tuple[int, float]) -> None:
    """One ``runs`` row and the stage's ``curves`` rows (replacing earlier ones of this run and stage)."""
    c, exp, rid = info.config, info.config["experiment"], info.run_id
    old_role = (c.get("shift") or {}).get("old", "en_old")
    new = [r for r in stage.data if r != old_role]
    sched = stage.schedule
    run_row = {
        "run_id": rid, "experiment": exp["name"], "stage": stage.name, "parent_stage": stage.parent,
        "stage_hash": sd.hash, "role": stage.role, "status": status,
        "variant": exp.get("variant"),
        "shift": shift_of(c["corpora"], old_role, new),
        "old_corpus": old_role, "new_corpus": ",".join(new) or None,
        "replay_ratio": stage.replay.ratio, "replay_mode": stage.replay.mode if stage.replay.ratio > 0 else "none",
        "schedule": sched.get("name"), "eta_max": sched.get("max_lr", sched.get("lr")), "eta_min": sched.get("min_lr"),
        "seed": int(c["seed"]), "scale": c.get("scale"), "model": c["model"].get("name"), "version": stage.version,
        "stage_tokens": int(done["tokens"]), "cumulative_tokens": cumulative[0],
        "stage_flops": float(done.get("flops", 0.0)), "cumulative_flops": cumulative[1],
        "steps": int(done["steps"]), "wall_s": float(done.get("wall_s", 0.0)),
        "config_hash": info.config_hash, "git_commit": info.git_commit, "checkpoint": str(sd.final_dir),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    results.append(info.results_dir, "runs", [run_row])
    rows = curve_rows(rid, stage.name, sd.log_dir, tokens_before=tokens_before,
                      tokens_per_step=info.geometry.tokens_per_step, final_step=int(done["steps"]), final_val=final_val)
    if rows:
        results.append(info.results_dir, "curves", rows)
