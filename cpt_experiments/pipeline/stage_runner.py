"""Train one stage: build its module, data and trainer; resume, checkpoint, export, mark done.

The runner never uses Lightning's ``ckpt_path`` to *start* a stage from its parent (that would
restore the parent's optimizer, schedule counters and data position).
A stage starts from the parent's exported weights (and, with ``optimizer: keep``, its moments);
``ckpt_path`` is used only to resume the *same* stage after an interruption.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from cpt_experiments.atomic import atomic_path
from cpt_experiments.pipeline.context import RunContext
from cpt_experiments.pipeline.stage_cache import StageDir, locked
from cpt_experiments.pipeline.stage_plan import StagePlan
from cpt_experiments.pipeline.stages import Stage
from cpt_experiments.training.callbacks.checkpoint import ResumeCheckpoint
from cpt_experiments.training.callbacks.domain_validation import DomainValidation
from cpt_experiments.training.callbacks.lr_schedule import LRScheduleCallback
from cpt_experiments.training.datamodule import CPTDataModule
from cpt_experiments.training.lm_module import CausalLMModule
from cpt_experiments.training.loggers import UpdateStepCSVLogger
from cpt_experiments.training.model import load_pretrained
from cpt_experiments.training.trainer import accumulation, build_trainer

log = logging.getLogger(__name__)


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


@dataclass
class StageOutcome:
    """What happened to a stage in this run."""

    status: str  # "trained" | "reused"
    summary: dict[str, Any]


def _init_weights(job: StageJob) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any] | None]:
    """Initial weights (and optimizer state) of a stage: scratch, parent, or a hub/local checkpoint."""
    stage, ctx = job.stage, job.ctx
    if job.parent_sd is not None:
        model = load_pretrained(job.parent_sd.final_dir, model_cfg=ctx.model_cfg, vocab_size=ctx.vocab_size)
        opt_state = None
        if stage.optimizer == "keep":
            opt_state = torch.load(job.parent_sd.final_dir / "optimizer.pt", map_location="cpu", weights_only=False)
        return model.state_dict(), opt_state
    if stage.init_from:
        key = f"experiment.stages.{stage.name}.init_from"
        model = load_pretrained(stage.init_from, model_cfg=ctx.model_cfg, vocab_size=ctx.vocab_size, key=key)
        return model.state_dict(), None
    return None, None


def train_stage(job: StageJob) -> StageOutcome:
    """Train ``job.stage`` unless its hash is already done; resume if a checkpoint exists."""
    ctx, cfg, plan = job.ctx, job.ctx.cfg, job.plan
    with locked(job.sd) as sd:
        if sd.is_done():
            log.info("stage %s (%s): reused from %s", job.stage.name, job.stage_hash, sd.root)
            return StageOutcome("reused", sd.summary())
        sd.write_spec(job.spec)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        init_state, opt_state = _init_weights(job)
        resuming = sd.last_ckpt.is_file()
        module = CausalLMModule(
            model_cfg=ctx.model_cfg,
            optim_cfg=ctx.optim_cfg,
            vocab_size=ctx.vocab_size,
            train_source_names=list(plan.mixture.names),
            init_state_dict=init_state,
            init_optimizer_state=None if resuming else opt_state,
            global_batch_tokens=ctx.geometry.tokens_per_step,
            tokens_before=job.tokens_before,
        )
        dm = CPTDataModule(
            job.train_sources,
            plan.mixture,
            ctx.geometry.seq_len,
            cfg.train.micro_batch,
            accumulate=accumulation(cfg.train, cfg.trainer),
            num_workers=cfg.train.num_workers,
        )
        callbacks = [
            LRScheduleCallback(plan.schedule),
            # Validation before the checkpoint at the same step, so its row is flushed with it.
            DomainValidation(ctx.valsets, cfg.train.val_every_n_steps, cfg.train.micro_batch),
            ResumeCheckpoint(sd.last_ckpt, cfg.train.checkpoint_every_n_steps),
        ]
        # A fresh CSV version per (re)start; collection keeps the latest value of each step.
        csv_log = UpdateStepCSVLogger(save_dir=str(sd.root), name="logs")
        trainer = build_trainer(cfg, plan.steps, callbacks, [csv_log, *job.extra_loggers])
        csv_log.trainer = trainer
        t0 = time.time()
        log.info(
            "stage %s (%s): %s %d steps",
            job.stage.name,
            job.stage_hash,
            "resuming" if resuming else "training",
            plan.steps,
        )
        trainer.fit(module, datamodule=dm, ckpt_path=str(sd.last_ckpt) if resuming else None)
        if trainer.global_step < plan.steps:
            raise RuntimeError(
                f"stage {job.stage.name}: training stopped at step {trainer.global_step} of {plan.steps}"
            )
        wall_s = time.time() - t0
        module.export_hf(sd.final_dir, ctx.tokenizer)
        # Optimizer moments travel with the final weights for children with `optimizer: keep`.
        with atomic_path(sd.final_dir / "optimizer.pt") as tmp:
            torch.save(trainer.optimizers[0].state_dict(), tmp)
        mixture, seq_len = plan.mixture, ctx.geometry.seq_len
        summary = {
            "stage": job.stage.name,
            "hash": job.stage_hash,
            "steps": plan.steps,
            "tokens": plan.steps * ctx.geometry.tokens_per_step,
            # Exact by construction of the plan (the module's live counters log the same numbers).
            "tokens_per_source": {k: v * seq_len for k, v in mixture.counts(0, len(mixture)).items()},
            "realised_fractions": mixture.realised_fractions(0, len(mixture)),
            "epochs_per_source": mixture.epochs_per_source(),
            "wall_s": wall_s,
            "flops": module.flops_per_token * plan.steps * ctx.geometry.tokens_per_step,
        }
        sd.mark_done(summary)
        return StageOutcome("trained", summary)
