"""The Lightning Trainer of one stage, and the gradient accumulation its batch geometry needs."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from cpt_experiments.config import TrainConfig, TrainerConfig, TrainRoot
from cpt_experiments.errors import config_error


def world_size(tc: TrainerConfig) -> int:
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
    world = world_size(trainer)
    micro, g = train.micro_batch, train.global_batch_windows
    if g % (micro * world):
        raise config_error(
            "train.global_batch_windows", f"{g} is not a multiple of train.micro_batch x world size = {micro} x {world}"
        )
    return g // (micro * world)


#: Trainer arguments the suite sets from the stage and the run config; a user value would be ignored.
SUITE_OWNED = (
    "max_steps", "max_epochs", "accumulate_grad_batches", "gradient_clip_val", "limit_val_batches",
    "num_sanity_val_steps", "log_every_n_steps", "use_distributed_sampler", "enable_checkpointing",
    "logger", "callbacks",
)  # fmt: skip


def trainer_arguments(tc: TrainerConfig) -> dict[str, Any]:
    """The ``instantiate`` mapping of the trainer config: ``_target_``, its fields and ``kwargs``."""
    owned = sorted(set(tc.kwargs) & set(SUITE_OWNED))
    if owned:
        raise config_error(f"trainer.kwargs.{owned[0]}", "is set by the suite from the stage and train.* settings")
    fields = {k: v for k, v in vars(tc).items() if k != "kwargs"}
    return {**fields, "enable_progress_bar": False, "enable_model_summary": False, "deterministic": False, **tc.kwargs}


def _not_an_advert(record: logging.LogRecord) -> bool:
    """Drop Lightning's per-Trainer "💡 Tip: ... try installing litlogger" line: one per stage, no information."""
    return not str(record.msg).startswith("💡 Tip")


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_not_an_advert)


def build_trainer(cfg: TrainRoot, steps: int, callbacks: list[pl.Callback], loggers: list[Any]) -> pl.Trainer:
    """The Lightning Trainer of a stage of ``steps`` optimizer steps: one epoch = the whole stage plan."""
    try:
        return instantiate(
            trainer_arguments(cfg.trainer),
            max_steps=steps,
            max_epochs=1,
            accumulate_grad_batches=accumulation(cfg.train, cfg.trainer),
            gradient_clip_val=cfg.optim.grad_clip_norm,
            limit_val_batches=0,  # validation runs in DomainValidation, keyed on the update count
            num_sanity_val_steps=0,
            log_every_n_steps=cfg.train.log_every_n_steps,
            use_distributed_sampler=False,
            enable_checkpointing=False,
            logger=loggers,
            callbacks=callbacks,
        )
    except InstantiationException as exc:
        cause = exc.__cause__ or exc
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise config_error("trainer", f"cannot build {cfg.trainer._target_}: {first}") from None


def gpu_missing(tc: TrainerConfig) -> bool:
    """True if the trainer asks for a GPU (``trainer=gpu|ddp|fsdp``) and this machine has none."""
    return str(tc.accelerator) in ("gpu", "cuda") and not torch.cuda.is_available()


def check_trainer(cfg: TrainRoot) -> None:
    """Build the trainer once with the run's settings, so a bad trainer value fails before any work.

    A dry run plans a GPU run on a machine without one (``trainer=gpu dry_run=true`` on a laptop): the
    arguments are then checked on the CPU (one device; ``fsdp``, which Lightning refuses on CPUs, as ``auto``).
    A real run without the GPU fails here, in one line.
    """
    if cfg.dry_run and gpu_missing(cfg.trainer):
        cpu = dataclasses.replace(cfg.trainer, accelerator="cpu", devices=1, num_nodes=1)
        if cpu.strategy == "fsdp":
            cpu = dataclasses.replace(cpu, strategy="auto")
        logging.getLogger(__name__).warning(
            "trainer.accelerator=%s: no GPU visible; the dry run checks the trainer on the CPU", cfg.trainer.accelerator
        )
        cfg = dataclasses.replace(cfg, trainer=cpu)
    build_trainer(cfg, 1, [], [])
