"""Run an experiment: a stage graph, trained in topological order through the stage cache.

``train(cfg)`` is what ``python -m cpt_experiments.train`` calls. ``run_experiment`` does it in
four steps, each its own function or module:

1. **plan** (``planning.plan_experiment``): typed config -> stage graph (plus the derived union baseline)
   -> tokenizer, token caches and validation windows (``context.prepare_run``) -> a content hash
   and a ``StagePlan`` (steps, schedule, mixture) per stage. Every stage is validated here,
   before any training;
2. **train** each stage through the stage cache (``stage_runner.train_stage``), or reuse it;
3. **measure** its final loss on every domain of the experiment (``eval.domain_loss``);
4. **record** its ``runs`` and ``curves`` rows and the run's config snapshot (``records``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cpt_experiments.config import TrainRoot
from cpt_experiments.eval.domain_loss import domain_losses
from cpt_experiments.pipeline import records, report, tracking
from cpt_experiments.pipeline.context import override_warnings, typed_config
from cpt_experiments.pipeline.evaluation import check_auto_suite, evaluate_marked_stages
from cpt_experiments.pipeline.failures import StageFailed, write_summary
from cpt_experiments.pipeline.planning import ExperimentPlan, plan_experiment
from cpt_experiments.pipeline.stage_cache import StageDir, stage_dir
from cpt_experiments.pipeline.stage_plan import REPLAY_PREFIX, StagePlan
from cpt_experiments.pipeline.stage_runner import StageJob, StageOutcome, is_rank_zero, train_stage
from cpt_experiments.pipeline.stages import lineage
from cpt_experiments.results import schema, store
from cpt_experiments.training.loggers import finish as finish_loggers
from cpt_experiments.training.loggers import stage_loggers
from cpt_experiments.training.model import load_pretrained
from cpt_experiments.training.trainer import usable_here, world_size

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What one ``train`` call did: per stage, its hash, status and final per-domain losses."""

    run_id: str
    roles: list[str] = field(default_factory=list)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    results_dir: str = ""
    config_hash: str = ""
    lines: list[str] = field(default_factory=list)  # what the run reports to its user

    def trained(self) -> list[str]:
        return [n for n, s in self.stages.items() if s["status"] == "done"]

    def fields(self) -> dict[str, Any]:
        """What ``summary.json`` holds: per stage its status, size, wall time (s) and final losses per domain."""
        keys = ("status", "hash", "tokens", "steps", "wall_s")
        stages = [{"stage": n, **{k: s[k] for k in keys}, "losses": s["final_val"]} for n, s in self.stages.items()]
        return {"run_id": self.run_id, "config_hash": self.config_hash, "results_dir": self.results_dir,
                "stages": stages, "lines": self.lines}  # fmt: skip


def run_experiment(cfg: DictConfig | Mapping[str, Any]) -> RunSummary:
    """Train (or reuse) every stage of ``cfg.experiment``; append results rows; return a summary."""
    root, plain = typed_config(cfg)
    commit = _check_before_planning(root)
    xp = plan_experiment(root)
    cfg_hash = records.run_hash(plain, xp.hashes)  # covers the corpora's content, unlike the config alone
    exp = root.experiment
    assert exp is not None
    rid = schema.run_id(exp.name, root.seed, cfg_hash)
    provisional = schema.run_id(exp.name, root.seed, records.config_hash(plain))  # see failures.handle_failure
    summary = RunSummary(rid, xp.ctx.roles, results_dir=root.paths.results_dir, config_hash=cfg_hash)
    if root.dry_run:  # the plan, measured throughput and estimated time; nothing is trained or written
        summary.lines = _dry_run_lines(root, xp, rid)
        return summary
    info = records.RunInfo(
        Path(root.paths.results_dir), rid, cfg_hash, commit, exp.name, exp.variant, xp.ctx, provisional
    )
    rank0 = is_rank_zero(world_size(root.trainer))  # under DDP the other ranks train, rank 0 measures and records
    if rank0:
        records.write_config_snapshot(info, plain, xp.hashes)
    cumulative: dict[str, tuple[int, float]] = {}
    for name in xp.todo:
        done = _train_and_measure(xp, info, plain, name, rank0)
        if done is not None:
            summary.stages[name] = _record_stage(xp, info, name, done, cumulative)
    summary.lines = report.summary_lines(rid, summary.stages, root.paths.results_dir, cfg_hash)
    return summary


def _check_before_planning(root: TrainRoot) -> str:
    """Fail before any work on what would fail only after training; returns the git commit to record."""
    commit = records.check_results_dir(root.paths.results_dir, root.allow_dirty_results)
    p = root.paths
    records.check_writable(p.output_dir, p.results_dir, p.stage_dir, p.cache_dir)
    store.check_tables(p.results_dir)  # a corrupt table fails now, not after training
    check_auto_suite(root)  # an unknown task fails now, not after every stage trained
    return commit


def _dry_run_lines(root: TrainRoot, xp: ExperimentPlan, rid: str) -> list[str]:
    """What a dry run reports: the trainer, the stages to run with their steps, throughput and estimated time."""
    todo = {name: xp.stages[name] for name in xp.todo}
    steps = {name: xp.plans.stage_plan(name).steps for name in todo}
    here = usable_here(root.trainer)  # a GPU config planned on a CPU machine: no throughput to measure
    lines = [f"dry run of {rid}", report.trainer_line(root)]
    lines += report.plan_lines(todo, xp.hashes, steps, xp.ctx, report.measure_tokens_per_s(xp.ctx) if here else None)
    if not here:
        lines.append(f"no {root.trainer.accelerator} on this machine: throughput not measured")
    return lines


@dataclass(frozen=True)
class _DoneStage:
    """A stage this run trained or reused, with its final loss per domain (measured on rank 0)."""

    outcome: StageOutcome
    sd: StageDir
    plan: StagePlan
    tokens_before: int  # tokens of its ancestors
    final_val: dict[str, dict[str, float]]  # domain -> {"loss": nats/token, "bpb": bits/byte}


def _train_and_measure(
    xp: ExperimentPlan, info: records.RunInfo, plain: Mapping[str, Any], name: str, rank0: bool
) -> _DoneStage | None:
    """Train or reuse stage ``name`` and, on rank 0, measure its final losses (None on the other ranks).

    Any failure is raised as StageFailed, named by stage and run (the entry point records a failed row).
    """
    meta = tracking.stage_meta(info.run_id, plain, xp.stages[name], xp.hashes[name])
    loggers: list[Any] = []
    final_val, failed = None, False
    try:
        # Extra loggers only for a stage this run may train: a reused stage gets no new W&B/TensorBoard run.
        sd = stage_dir(xp.ctx.cfg.paths.stage_dir, xp.hashes[name])
        loggers = [] if sd.done_file.is_file() else stage_loggers(plain["logger"], meta)
        outcome, sd, plan, tokens_before = _run_stage(xp, info, plain, name, loggers)
        if not rank0:
            return None
        model = load_pretrained(sd.final_dir, model_cfg=xp.ctx.model_cfg, vocab_size=xp.ctx.vocab_size)
        final_val = domain_losses(model, xp.ctx.valsets)
    except Exception as exc:
        failed = True
        raise StageFailed(info.run_id, name, exc, info.config_hash) from exc
    finally:
        finish_loggers(loggers, meta.hparams, final_val, "failed" if failed else "success")
    return _DoneStage(outcome, sd, plan, tokens_before, final_val)


def _record_stage(
    xp: ExperimentPlan, info: records.RunInfo, name: str, done: _DoneStage, cumulative: dict[str, tuple[int, float]]
) -> dict[str, Any]:
    """Append the stage's ``runs`` and ``curves`` rows; returns its entry of ``RunSummary.stages``.

    ``cumulative`` maps each stage recorded so far to (tokens, FLOPs) from the start of its lineage;
    this stage's entry is added (its parent's is there: stages come in topological order).
    """
    stage, result = xp.stages[name], done.outcome.result
    before_flops = cumulative[stage.parent][1] if stage.parent else 0.0
    cumulative[name] = (done.tokens_before + result.tokens, before_flops + result.flops)
    status = "done" if done.outcome.status == "trained" else "reused"
    parent_hash = xp.hashes[stage.parent] if stage.parent else None
    row = records.run_row(info, stage, xp.stages, done.sd, done.plan, status, result, cumulative[name], parent_hash)
    records.append_stage_rows(info, row, done.sd, done.final_val, done.tokens_before)
    return {
        "hash": xp.hashes[name],
        "status": status,
        "final_val": done.final_val,
        "dir": str(done.sd.root),
        "checkpoint": str(done.sd.final_dir),
        "evaluate": stage.evaluate,
        "tokens": result.tokens,
        "steps": result.steps,
        "wall_s": result.wall_s,
    }


def _run_stage(
    xp: ExperimentPlan, info: records.RunInfo, plain: Mapping[str, Any], name: str, loggers: list[Any]
) -> tuple[StageOutcome, StageDir, StagePlan, int]:
    """Train or reuse one stage; returns (outcome, stage dir, plan, tokens of its ancestors)."""
    stage, ctx = xp.stages[name], xp.ctx
    plan = xp.plans.stage_plan(name)
    sd = stage_dir(ctx.cfg.paths.stage_dir, xp.hashes[name])
    parent_sd = stage_dir(ctx.cfg.paths.stage_dir, xp.hashes[stage.parent]) if stage.parent else None
    ancestors = lineage(xp.stages, name)[:-1]
    tokens_before = sum(xp.plans.stage_plan(s.name).steps for s in ancestors) * ctx.geometry.tokens_per_step
    spec = {"stage": name, "hash": xp.hashes[name], "parent_hash": xp.hashes.get(stage.parent or ""),
            "experiment": info.experiment, "config": dict(plain)}  # fmt: skip
    job = StageJob(
        stage=stage, stage_hash=xp.hashes[name], sd=sd, parent_sd=parent_sd, plan=plan,
        train_sources={n: ctx.train_tokens(n.removeprefix(REPLAY_PREFIX)) for n in plan.mixture.names},
        tokens_before=tokens_before, ctx=ctx, spec=spec, extra_loggers=loggers,
    )  # fmt: skip
    return train_stage(job), sd, plan, tokens_before


def _task_overrides() -> list[str]:
    """The command line's overrides under Hydra; none when called from Python."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def train(cfg: DictConfig) -> RunSummary:
    """Train or reuse every stage of ``cfg.experiment``, then evaluate marked stages if ``evaluation.auto``."""
    for warning in override_warnings(_task_overrides()):
        log.warning("%s", warning)
    summary = run_experiment(cfg)
    for line in summary.lines:
        log.info("%s", line)
    write_summary(summary.fields())  # summary.json, and the sweep's combined table
    if cfg.evaluation.auto and summary.stages:
        evaluate_marked_stages(cfg, summary.run_id, summary.roles, summary.stages)
    return summary
