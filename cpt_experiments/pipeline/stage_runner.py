"""Train one stage: build its module, data and trainer; resume, checkpoint, export, mark done.

The runner never uses Lightning's ``ckpt_path`` to *start* a stage from its parent (that would
restore the parent's optimizer, schedule counters and data position).
A stage starts from the parent's exported weights (and, with ``optimizer: keep``, its moments);
``ckpt_path`` is used only to resume the *same* stage after an interruption, and only from a
checkpoint that verifies (complete, CRC-clean, loadable with ``weights_only=True``): a bad one is
deleted with a warning naming it and the stage restarts, so a rerun never gets stuck on it. A
finished stage whose ``final/`` no longer matches its recorded checksums is not reused: its
``done.json`` and ``final/`` are dropped with a warning and the stage is finished again, from its
final checkpoint if that verifies (the same weights, nothing retrained), else by retraining.

Data parallel: every rank runs the pipeline. Global rank 0 holds the stage's file lock and is the
only writer of the stage cache; the other ranks never lock (they would wait forever on rank 0,
which waits for them inside ``fit``) and follow rank 0's decisions (reuse or train, resume or
not) through a broadcast once a process group exists.
"""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist

from cpt_experiments.atomic import atomic_path
from cpt_experiments.pipeline import records
from cpt_experiments.pipeline.context import RunContext
from cpt_experiments.pipeline.stage_cache import StageDir, StageResult, locked
from cpt_experiments.pipeline.stage_plan import StagePlan
from cpt_experiments.pipeline.stages import Stage
from cpt_experiments.training.callbacks.checkpoint import ResumeCheckpoint, checkpoint_problem, load_plain
from cpt_experiments.training.callbacks.domain_validation import DomainValidation
from cpt_experiments.training.callbacks.finite_loss import FiniteLoss
from cpt_experiments.training.callbacks.lr_schedule import LRScheduleCallback
from cpt_experiments.training.callbacks.progress import ProgressLine
from cpt_experiments.training.datamodule import CPTDataModule
from cpt_experiments.training.lm_module import CausalLMModule
from cpt_experiments.training.loggers import UpdateStepCSVLogger
from cpt_experiments.training.model import load_pretrained
from cpt_experiments.training.trainer import accumulation, build_trainer, micro_batch, world_size

log = logging.getLogger(__name__)

#: Environment variables through which launchers give a process its rank (Lightning's DDP
#: launcher: LOCAL_RANK/NODE_RANK; torchrun: RANK; SLURM: SLURM_PROCID; LSF: JSM_NAMESPACE_RANK).
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


@dataclass
class StageJob:
    """One stage to train: its spec and hash, where it lives, its plan, and the run it belongs to."""

    stage: Stage
    stage_hash: str
    sd: StageDir
    parent_sd: StageDir | None
    plan: StagePlan
    train_sources: dict[str, np.ndarray]  # plan source name -> token array
    tokens_before: int  # tokens of the ancestors (offset of the cumulative token axis)
    ctx: RunContext
    spec: dict[str, Any]  # written to spec.json: the stage, its hashes and the resolved config
    extra_loggers: list[Any] = field(default_factory=list)
    run_key: str | None = None  # the run's config hash; None: computed from spec["config"]


@dataclass
class StageOutcome:
    """What happened to a stage in this run.

    ``status`` is "trained" when this run (same config hash, this or an earlier invocation) trained
    at least one step of the stage, "reused" when every step was trained by other runs.
    """

    status: str  # "trained" | "reused"
    result: StageResult  # the stage's done.json summary


# ---- ranks ------------------------------------------------------------------------------------


def is_rank_zero(world_size: int = 2) -> bool:
    """Whether this process is global rank 0, from its launcher's environment (no process group needed).

    A single-process trainer (``world_size`` 1) is always rank 0, whatever variables a cluster
    wrapper left in the environment (e.g. ``SLURM_PROCID`` of a multi-task ``srun``).
    """
    return world_size <= 1 or all(int(os.environ.get(var) or 0) == 0 for var in RANK_VARIABLES)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _agree(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank once a process group exists (all ranks must take one branch).

    Before the first ``fit`` there is no process group; Lightning's launcher starts the other ranks
    only inside rank 0's ``fit``, i.e. after rank 0 decided, so their own view of the cache agrees.
    """
    if not _distributed():
        return flag
    on_gpu = dist.get_backend() == "nccl"
    box = torch.tensor([int(flag)], device=torch.device("cuda", torch.cuda.current_device()) if on_gpu else "cpu")
    dist.broadcast(box, src=0)
    return bool(box.item())


def _barrier() -> None:
    if _distributed():
        dist.barrier()


# ---- stage --------------------------------------------------------------------------------------


def _run_key(job: StageJob) -> str | None:
    if job.run_key is not None:
        return job.run_key
    config = job.spec.get("config")
    return records.config_hash(config) if isinstance(config, dict) else None


def _status(result: StageResult, run_key: str | None, steps_here: int) -> str:
    """``trained`` if this run trained a step of the stage (now, or in an interrupted earlier try), else ``reused``."""
    return "trained" if steps_here > 0 or (run_key is not None and run_key in result.trained_by) else "reused"


def _finished(job: StageJob) -> StageResult | None:
    """Rank 0, under the lock: the stage's record if it is finished and intact, else None (after repair)."""
    sd = job.sd
    sd.clean_stale_temps()
    if not sd.done_file.is_file():
        return None
    problem = sd.done_problem()
    if problem is None:
        return sd.result()
    log.warning("stage %s (%s): %s; finishing it again", job.stage.name, job.stage_hash, problem)
    sd.unmark_done()
    return None


def _resumable(job: StageJob) -> bool:
    """Rank 0, under the lock: True if ``last.ckpt`` verifies; a bad one is deleted with a warning."""
    path = job.sd.last_ckpt
    if not path.is_file():
        return False
    problem = checkpoint_problem(path)
    if problem is None:
        return True
    log.warning("stage %s: %s is unusable (%s); deleted it, restarting the stage", job.stage.name, path, problem)
    path.unlink(missing_ok=True)
    return False


def _init_weights(job: StageJob, resuming: bool) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any] | None]:
    """Initial weights (and optimizer state) of a stage: scratch, parent, or a hub/local checkpoint."""
    stage, ctx = job.stage, job.ctx
    if job.parent_sd is not None:
        model = load_pretrained(job.parent_sd.final_dir, model_cfg=ctx.model_cfg, vocab_size=ctx.vocab_size)
        opt_state = None
        if stage.optimizer == "keep" and not resuming:  # a resume restores the stage's own moments
            opt_state = load_plain(job.parent_sd.final_dir / "optimizer.pt")
        return model.state_dict(), opt_state
    if stage.init_from:
        key = f"experiment.stages.{stage.name}.init_from"
        model = load_pretrained(stage.init_from, model_cfg=ctx.model_cfg, vocab_size=ctx.vocab_size, key=key)
        return model.state_dict(), None
    return None, None


def train_stage(job: StageJob) -> StageOutcome:
    """Train ``job.stage`` unless its hash is already done; resume from a verified checkpoint if one exists."""
    rank0, run_key = is_rank_zero(world_size(job.ctx.cfg.trainer)), _run_key(job)
    with locked(job.sd) if rank0 else nullcontext(job.sd) as sd:
        finished = _finished(job) if rank0 else None
        if _agree(finished is not None if rank0 else sd.done_file.is_file()):
            result = finished if finished is not None else sd.result()
            log.info("stage %s (%s): reused from %s", job.stage.name, job.stage_hash, sd.root)
            return StageOutcome(_status(result, run_key, 0), result)
        if rank0:
            sd.write_spec(job.spec)
        resuming = _agree(_resumable(job) if rank0 else sd.last_ckpt.is_file())
        return _train(job, run_key, resuming, rank0)


def _train(job: StageJob, run_key: str | None, resuming: bool, rank0: bool) -> StageOutcome:
    """Train the stage (from its start, or resuming ``last.ckpt``); rank 0 exports it and marks it done."""
    cfg, plan, sd = job.ctx.cfg, job.plan, job.sd
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    # Built in this order after the seed: the module's random init draws from the seeded generator.
    module = _module(job, resuming)
    dm = _datamodule(job)
    checkpoint = ResumeCheckpoint(sd.last_ckpt, cfg.train.checkpoint_every_n_steps, run_key=run_key)
    # A fresh CSV version per (re)start; collection keeps the latest value of each step.
    csv_log = UpdateStepCSVLogger(save_dir=str(sd.root), name="logs")
    trainer = build_trainer(cfg, plan.steps, _callbacks(job, checkpoint), [csv_log, *job.extra_loggers])
    csv_log.trainer = trainer
    log.info(
        "stage %s (%s): %s %d steps", job.stage.name, job.stage_hash, "resuming" if resuming else "training", plan.steps
    )
    trainer.fit(module, datamodule=dm, ckpt_path=str(sd.last_ckpt) if resuming else None, weights_only=True)
    if trainer.global_step < plan.steps:
        raise RuntimeError(f"stage {job.stage.name}: training stopped at step {trainer.global_step} of {plan.steps}")
    if rank0:
        _export(job, module, trainer.optimizers[0], checkpoint.segments(trainer.global_step))
    _barrier()  # the other ranks read the record rank 0 just wrote
    result = sd.result()
    return StageOutcome(_status(result, run_key, trainer.global_step - checkpoint.start_step), result)


def _module(job: StageJob, resuming: bool) -> CausalLMModule:
    """The stage's Lightning module, from its initial weights (``_init_weights``)."""
    ctx, cfg = job.ctx, job.ctx.cfg
    init_state, opt_state = _init_weights(job, resuming)
    return CausalLMModule(
        model_cfg=ctx.model_cfg,
        optim_cfg=ctx.optim_cfg,
        vocab_size=ctx.vocab_size,
        train_source_names=list(job.plan.mixture.names),
        init_state_dict=init_state,
        init_optimizer_state=opt_state,
        global_batch_tokens=ctx.geometry.tokens_per_step,
        tokens_before=job.tokens_before,
        attention=cfg.train.attention,
        compile=cfg.train.compile,
        gradient_checkpointing=cfg.train.gradient_checkpointing,
    )


def _datamodule(job: StageJob) -> CPTDataModule:
    """The stage's batches: its plan's mixture over its token arrays, in windows of ``seq_len`` tokens."""
    cfg = job.ctx.cfg
    return CPTDataModule(
        job.train_sources,
        job.plan.mixture,
        job.ctx.geometry.seq_len,
        micro_batch(cfg.train, cfg.trainer),
        accumulate=accumulation(cfg.train, cfg.trainer),
        num_workers=cfg.train.num_workers,
    )


def _callbacks(job: StageJob, checkpoint: ResumeCheckpoint) -> list[pl.Callback]:
    """The stage's callbacks, in the order they must run (see the comments)."""
    ctx, train = job.ctx, job.ctx.cfg.train
    return [
        LRScheduleCallback(job.plan.schedule),
        # Validation before the checkpoint at the same step, so its row is flushed with it.
        DomainValidation(ctx.valsets, train.val_every_n_steps, train.micro_batch, train.val_early_steps),
        checkpoint,
        # A diverged stage stops within a few steps instead of being cached as done.
        FiniteLoss(every_n_steps=train.log_every_n_steps),
        ProgressLine(job.stage.name, job.plan.steps, ctx.geometry.tokens_per_step),
    ]


def _export(
    job: StageJob, module: CausalLMModule, optimizer: torch.optim.Optimizer, segments: list[dict[str, Any]]
) -> None:
    """Rank 0: write ``final/`` (HF model and tokenizer, optimizer moments), then ``done.json``."""
    sd = job.sd
    module.export_hf(sd.final_dir, job.ctx.tokenizer)
    # Optimizer moments travel with the final weights for children with `optimizer: keep`.
    with atomic_path(sd.final_dir / "optimizer.pt") as tmp, open(tmp, "wb") as fh:
        torch.save(optimizer.state_dict(), fh)
    sd.mark_done(_result(job, module.flops_per_token, segments).summary())


def _result(job: StageJob, flops_per_token: float, segments: list[dict[str, Any]]) -> StageResult:
    """The record of a stage trained to its last step over ``segments`` (``flops_per_token``: model FLOPs)."""
    plan, tokens_per_step, seq_len = job.plan, job.ctx.geometry.tokens_per_step, job.ctx.geometry.seq_len
    mixture = plan.mixture
    return StageResult(
        stage=job.stage.name,
        hash=job.stage_hash,
        steps=plan.steps,
        tokens=plan.steps * tokens_per_step,
        # Exact by construction of the plan (the module's live counters log the same numbers).
        tokens_per_source={k: v * seq_len for k, v in mixture.counts(0, len(mixture)).items()},
        realised_fractions=mixture.realised_fractions(0, len(mixture)),
        epochs_per_source=mixture.epochs_per_source(),
        # Seconds of training over every segment that led to these weights (resumes included;
        # work lost after a segment's last checkpoint is not).
        wall_s=sum(s["wall_s"] for s in segments),
        segments=segments,
        trained_by=ResumeCheckpoint.trained_by(segments),
        flops=flops_per_token * plan.steps * tokens_per_step,
    )
