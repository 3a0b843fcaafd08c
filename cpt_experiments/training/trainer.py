"""The Lightning Trainer of one stage, and the gradient accumulation its batch geometry needs."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from cpt_experiments.config import TrainConfig, TrainerConfig, TrainRoot
from cpt_experiments.errors import config_error


def _world_size(tc: TrainerConfig) -> int:
    """Ranks the trainer config asks for (``devices: -1`` = every visible GPU)."""
    if isinstance(tc.devices, (list, tuple)):
        per_node = len(tc.devices)
    elif int(tc.devices) == -1:
        per_node = max(1, torch.cuda.device_count())
    else:
        per_node = int(tc.devices)
    return per_node * tc.num_nodes


def accumulation(train: TrainConfig, trainer: TrainerConfig) -> int:
    """Micro-batches per optimizer step so that every step sees ``global_batch_windows`` windows."""
    world = _world_size(trainer)
    micro, g = train.micro_batch, train.global_batch_windows
    if g % (micro * world):
        raise config_error(
            "train.global_batch_windows", f"{g} is not a multiple of train.micro_batch x world size = {micro} x {world}"
        )
    return g // (micro * world)


def build_trainer(cfg: TrainRoot, steps: int, callbacks: list[pl.Callback], loggers: list[Any]) -> pl.Trainer:
    """The Lightning Trainer of a stage of ``steps`` optimizer steps: one epoch = the whole stage plan."""
    tc = cfg.trainer
    return pl.Trainer(
        accelerator=tc.accelerator,
        devices=tc.devices,
        num_nodes=tc.num_nodes,
        strategy=tc.strategy,
        precision=tc.precision,
        max_steps=steps,
        max_epochs=1,
        accumulate_grad_batches=accumulation(cfg.train, tc),
        gradient_clip_val=cfg.optim.grad_clip_norm,
        limit_val_batches=0,  # validation runs in DomainValidation, keyed on the update count
        num_sanity_val_steps=0,
        log_every_n_steps=cfg.train.log_every_n_steps,
        use_distributed_sampler=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=loggers,
        callbacks=callbacks,
        deterministic=False,
    )
