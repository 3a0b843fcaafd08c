"""The Lightning Trainer of one stage, and the gradient accumulation its batch geometry needs."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from transformers.utils import logging as hf_logging

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


def micro_batch(train: TrainConfig, trainer: TrainerConfig) -> int:
    """Windows per rank and forward pass: ``train.micro_batch``, shrunk to the largest divisor of the per-rank
    batch when the configured one fits one process but not ``world`` of them (e.g. ``trainer=ddp_cpu`` at a
    scale sized for one process). The global batch, hence the data order and the stage hash, never changes."""
    world = world_size(trainer)
    micro, g = train.micro_batch, train.global_batch_windows
    if g % (micro * world) == 0:
        return micro
    if g % micro == 0 and g % world == 0:
        per_rank = g // world
        return max(d for d in range(1, min(micro, per_rank) + 1) if per_rank % d == 0)
    if g % micro == 0:  # fits one process; no per-rank split exists
        raise config_error(
            "train.global_batch_windows",
            f"{g} windows cannot be split over {world} ranks: set train.global_batch_windows to a multiple of {world} "
            "(this changes the stage hashes) or use fewer devices",
        )
    raise config_error(
        "train.global_batch_windows", f"{g} is not a multiple of train.micro_batch x world size = {micro} x {world}"
    )


def accumulation(train: TrainConfig, trainer: TrainerConfig) -> int:
    """Micro-batches per optimizer step so that every step sees ``global_batch_windows`` windows."""
    return train.global_batch_windows // (micro_batch(train, trainer) * world_size(trainer))


def usable_here(tc: TrainerConfig) -> bool:
    """Whether this machine has the accelerator the trainer config asks for (a CPU login node has no GPU)."""
    return str(tc.accelerator) not in ("gpu", "cuda") or torch.cuda.is_available()


#: Trainer arguments the suite sets from the stage and the run config; a user value would be ignored.
SUITE_OWNED = (
    "max_steps", "max_epochs", "accumulate_grad_batches", "gradient_clip_val", "limit_val_batches",
    "num_sanity_val_steps", "log_every_n_steps", "use_distributed_sampler", "enable_checkpointing",
    "logger", "callbacks",
)  # fmt: skip


def trainer_arguments(tc: TrainerConfig) -> dict[str, Any]:
    """The ``instantiate`` mapping of the trainer config: ``_target_``, its fields and ``kwargs``."""
    owned = sorted(set(tc.kwargs) & set(SUITE_OWNED))
    if owned == ["callbacks"]:
        raise config_error("trainer.kwargs.callbacks", "is set by the suite; add a callback with +callbacks=<name>")
    if owned:
        raise config_error(f"trainer.kwargs.{owned[0]}", "is set by the suite from the stage and train.* settings")
    fields = {k: v for k, v in vars(tc).items() if k != "kwargs"}
    return {**fields, "enable_progress_bar": False, "enable_model_summary": False, "deterministic": False, **tc.kwargs}


_BANNERS = ("GPU available", "TPU available", "HPU available", "IPU available")  # the same every stage
_seen_banners: set[str] = set()


def _quiet_lightning(record: logging.LogRecord) -> bool:
    """Drop Lightning's per-Trainer noise: the "💡 Tip" advert, "`Trainer.fit` stopped: max_steps reached" (the
    suite's progress line says it), and the accelerator banners after their first time in this process."""
    msg = str(record.msg)
    if msg.startswith("💡 Tip") or msg.startswith("`Trainer.fit` stopped: `max_steps="):
        return False
    if msg.startswith(_BANNERS):
        if msg in _seen_banners:
            return False
        _seen_banners.add(msg)
    return True


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_quiet_lightning)
# Lightning's own use of a deprecated torch API, once per stage; nothing a user can act on.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
# transformers' per-checkpoint "Writing model shards" / "Loading weights" bars: a log file gets one per stage.
hf_logging.disable_progress_bar()


def user_callbacks(specs: Mapping[str, Any]) -> list[pl.Callback]:
    """The ``callbacks`` group (``+callbacks=lr_monitor``): any Lightning callback from its ``_target_`` config."""
    out = []
    for name, spec in specs.items():
        key = f"callbacks.{name}"
        if not isinstance(spec, Mapping) or "_target_" not in spec:
            raise config_error(key, "must be a callback config with a _target_ (see conf/callbacks/)")
        try:
            callback = instantiate(dict(spec))
        except InstantiationException as exc:
            cause = exc.__cause__ or exc
            raise config_error(key, (str(cause).strip().splitlines() or [type(cause).__name__])[0]) from None
        if not isinstance(callback, pl.Callback):
            raise config_error(key, f"{spec['_target_']} is not a Lightning Callback")
        out.append(callback)
    return out


def build_trainer(cfg: TrainRoot, steps: int, callbacks: list[pl.Callback], loggers: list[Any]) -> pl.Trainer:
    """The Lightning Trainer of a stage of ``steps`` optimizer steps: one epoch = the whole stage plan."""
    callbacks = [*callbacks, *user_callbacks(cfg.callbacks)]
    arguments = trainer_arguments(cfg.trainer)
    if any(isinstance(c, pl.callbacks.ProgressBar) for c in callbacks):  # a user's bar (+callbacks=rich_progress)
        arguments["enable_progress_bar"] = True
    try:
        return instantiate(
            arguments,
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


def check_trainer(cfg: TrainRoot, build: bool = True) -> None:
    """Check the trainer settings and batch geometry before any work; ``build`` also instantiates the trainer
    once, so a bad Lightning argument fails here (a dry run skips it: it plans GPU configs on a CPU machine)."""
    trainer_arguments(cfg.trainer)
    accumulation(cfg.train, cfg.trainer)
    if build:
        build_trainer(cfg, 1, [], [])
