"""Train one stage: build its module, data and trainer; resume, checkpoint, export, mark done.

The runner never uses Lightning's ``ckpt_path`` to *start* a stage from its parent (that would
restore the parent's optimizer, schedule counters and data position: landscape pitfalls 1-2).
A stage starts from the parent's exported weights (and, with ``optimizer: keep``, its moments);
``ckpt_path`` is used only to resume the *same* stage after an interruption.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch

from cpt_experiments.atomic import atomic_path
from cpt_experiments.callbacks.checkpoint import ResumeCheckpoint
from cpt_experiments.callbacks.domain_validation import DomainValidation
from cpt_experiments.callbacks.lr_schedule import LRScheduleCallback
from cpt_experiments.data.datamodule import CPTDataModule
from cpt_experiments.lm_module import CausalLMModule
from cpt_experiments.loggers import UpdateStepCSVLogger
from cpt_experiments.model import load_pretrained
from cpt_experiments.schedules import build_schedule
from cpt_experiments.errors import config_error
from cpt_experiments.stage_cache import StageDir, locked
from cpt_experiments.stages import Stage

log = logging.getLogger(__name__)


@dataclass
class StageJob:
    """Everything needed to train one stage (built by :mod:`cpt_experiments.experiment`)."""

    stage: Stage
    stage_hash: str
    sd: StageDir
    parent_sd: StageDir | None
    datamodule_kwargs: dict[str, Any]
    steps: int
    tokens_per_step: int
    tokens_before: int
    model_cfg: dict[str, Any]
    optim_cfg: dict[str, Any]
    trainer_cfg: dict[str, Any]
    train_cfg: dict[str, Any]
    tokenizer: Any
    valsets: dict[str, Any]
    vocab_size: int
    seed: int
    spec: dict[str, Any]
    extra_loggers: list[Any] = field(default_factory=list)


@dataclass
class StageOutcome:
    """What happened to a stage in this run."""

    status: str  # "trained" | "reused"
    summary: dict[str, Any]


def _init_weights(job: StageJob) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any] | None]:
    """Initial weights (and optimizer state) of a stage: scratch, parent, or a hub/local checkpoint."""
    stage = job.stage
    if job.parent_sd is not None:
        model = load_pretrained(job.parent_sd.final_dir, model_cfg=job.model_cfg, vocab_size=job.vocab_size)
        opt_state = None
        if stage.optimizer == "keep":
            opt_state = torch.load(job.parent_sd.final_dir / "optimizer.pt", map_location="cpu", weights_only=False)
        return model.state_dict(), opt_state
    if stage.init_from:
        model = load_pretrained(stage.init_from, model_cfg=job.model_cfg, vocab_size=job.vocab_size)
        return model.state_dict(), None
    return None, None


def _world_size(tc: dict[str, Any]) -> int:
    """Ranks the trainer config asks for (``devices: -1`` = every visible GPU)."""
    devices = tc.get("devices", 1)
    if isinstance(devices, (list, tuple)):
        per_node = len(devices)
    elif int(devices) == -1:
        per_node = max(1, torch.cuda.device_count())
    else:
        per_node = int(devices)
    return per_node * int(tc.get("num_nodes", 1))


def accumulation(train_cfg: dict[str, Any], trainer_cfg: dict[str, Any]) -> int:
    """Micro-batches per optimizer step so that every step sees ``global_batch_windows`` windows."""
    world = _world_size(trainer_cfg)
    micro = int(train_cfg["micro_batch"])
    g = int(train_cfg["global_batch_windows"])
    if micro < 1 or g % (micro * world):
        raise config_error(
            "train.global_batch_windows", f"{g} is not a multiple of train.micro_batch x world size = {micro} x {world}"
        )
    return g // (micro * world)


def build_trainer(job: StageJob, callbacks: list[pl.Callback], loggers: list[Any]) -> pl.Trainer:
    """The Lightning Trainer of a stage: one epoch = the whole stage plan."""
    tc = job.trainer_cfg
    accumulate = accumulation(job.train_cfg, tc)
    return pl.Trainer(
        accelerator=tc.get("accelerator", "cpu"),
        devices=tc.get("devices", 1),
        num_nodes=int(tc.get("num_nodes", 1)),
        strategy=tc.get("strategy", "auto"),
        precision=tc.get("precision", "32-true"),
        max_steps=job.steps,
        max_epochs=1,
        accumulate_grad_batches=accumulate,
        gradient_clip_val=float(job.optim_cfg.get("grad_clip_norm", 1.0)),
        limit_val_batches=0,  # validation runs in DomainValidation, keyed on the update count
        num_sanity_val_steps=0,
        log_every_n_steps=int(job.train_cfg.get("log_every_n_steps", 10)),
        use_distributed_sampler=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=loggers,
        callbacks=callbacks,
        deterministic=False,
    )


def train_stage(job: StageJob) -> StageOutcome:
    """Train ``job.stage`` unless its hash is already done; resume if a checkpoint exists."""
    with locked(job.sd) as sd:
        if sd.is_done():
            log.info("stage %s (%s): reused from %s", job.stage.name, job.stage_hash, sd.root)
            return StageOutcome("reused", sd.summary())
        sd.write_spec(job.spec)
        pl.seed_everything(job.seed, workers=True, verbose=False)
        init_state, opt_state = _init_weights(job)
        resuming = sd.last_ckpt.is_file()
        module = CausalLMModule(
            model_cfg=job.model_cfg,
            optim_cfg=job.optim_cfg,
            vocab_size=job.vocab_size,
            train_source_names=list(job.datamodule_kwargs["plan"].names),
            init_state_dict=init_state,
            init_optimizer_state=None if resuming else opt_state,
            global_batch_tokens=job.tokens_per_step,
            tokens_before=job.tokens_before,
        )
        dm = CPTDataModule(**job.datamodule_kwargs, accumulate=accumulation(job.train_cfg, job.trainer_cfg))
        schedule = build_schedule(job.stage.schedule, job.steps, key=f"experiment.stages.{job.stage.name}.schedule")
        callbacks = [
            LRScheduleCallback(schedule),
            # Validation before the checkpoint at the same step, so its row is flushed with it.
            DomainValidation(job.valsets, int(job.train_cfg["val_every_n_steps"]), int(job.train_cfg["micro_batch"])),
            ResumeCheckpoint(sd.last_ckpt, int(job.train_cfg["checkpoint_every_n_steps"])),
        ]
        # A fresh CSV version per (re)start; collection keeps the latest value of each step.
        csv_log = UpdateStepCSVLogger(save_dir=str(sd.root), name="logs")
        trainer = build_trainer(job, callbacks, [csv_log, *job.extra_loggers])
        csv_log.trainer = trainer
        t0 = time.time()
        log.info("stage %s (%s): %s %d steps", job.stage.name, job.stage_hash, "resuming" if resuming else "training", job.steps)
        trainer.fit(module, datamodule=dm, ckpt_path=str(sd.last_ckpt) if resuming else None)
        if trainer.global_step < job.steps:
            raise RuntimeError(f"stage {job.stage.name}: training stopped at step {trainer.global_step} of {job.steps}")
        wall_s = time.time() - t0
        plan, seq_len = job.datamodule_kwargs["plan"], int(job.datamodule_kwargs["seq_len"])
        module.export_hf(sd.final_dir, job.tokenizer)
        # Optimizer moments travel with the final weights for children with `optimizer: keep`.
        with atomic_path(sd.final_dir / "optimizer.pt") as tmp:
            torch.save(trainer.optimizers[0].state_dict(), tmp)
        summary = {
            "stage": job.stage.name,
            "hash": job.stage_hash,
            "steps": job.steps,
            "tokens": job.steps * job.tokens_per_step,
            # Exact by construction of the plan (the module's live counters log the same numbers).
            "tokens_per_source": {k: v * seq_len for k, v in plan.counts(0, len(plan)).items()},
            "realised_fractions": plan.realised_fractions(0, len(plan)),
            "epochs_per_source": plan.epochs_per_source(),
            "wall_s": wall_s,
            "flops": module.flops_per_token * job.steps * job.tokens_per_step,
        }
        sd.mark_done(summary)
        return StageOutcome("trained", summary)
