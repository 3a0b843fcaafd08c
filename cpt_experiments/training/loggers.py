"""Loggers of a stage: the always-on CSV log (it feeds the results tables) and the configured extras.

Extra loggers are configs with ``_target_`` (``conf/logger/*.yaml``), instantiated once per trained
stage with the suite's naming: TensorBoard runs live under ``<save_dir>/<run_id>/<stage>``, with the
stage's defining config as hparams and its final per-domain losses as their metrics (the HPARAMS
tab); W&B gets one run per stage, grouped by the cell without the seed (``group``), with the stage's
role as ``job_type``, shift/replay/seed tags and the stage's defining config as ``config``, finished
when the stage ends. W&B is offline unless the user sets ``logger.wandb.offline=false``, so a sweep
on a machine without network never blocks on a login prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from cpt_experiments.errors import config_error


def _suite_kwargs(cls: type, meta: Any) -> dict[str, Any]:
    """Names and metadata the suite gives each kind of logger (a key set in the config wins)."""
    if issubclass(cls, WandbLogger):
        return {"name": f"{meta.run_id}/{meta.stage}", "group": meta.group, "job_type": meta.role,
                "tags": list(meta.tags), "config": dict(meta.hparams)}  # fmt: skip
    if issubclass(cls, TensorBoardLogger):
        return {"name": meta.run_id, "version": meta.stage, "default_hp_metric": False}
    return {}


def stage_loggers(logger_cfg: Mapping[str, Mapping[str, Any]], meta: Any) -> list[Logger]:
    """Instantiate every configured extra logger for one stage (``meta``: a ``pipeline.tracking.StageMeta``);
    a bad config names ``logger.<name>``."""
    hparams = meta.hparams
    out: list[Logger] = []
    for name, spec in logger_cfg.items():
        key = f"logger.{name}"
        if not isinstance(spec, Mapping) or "_target_" not in spec:
            raise config_error(key, "must be a logger config with a _target_ (see conf/logger/)")
        try:
            cls = get_class(spec["_target_"])
            extra = {k: v for k, v in _suite_kwargs(cls, meta).items() if k not in spec}
            # Merged, not passed as kwargs: W&B's `config` would clash with instantiate's own parameter.
            logger = instantiate({**spec, **extra, "_convert_": "all"})
            _ = logger.experiment  # opens the writer / W&B run now, so a bad setting fails here, named
            if not isinstance(logger, WandbLogger):  # W&B got the config at init
                logger.log_hyperparams(dict(hparams))
        except (InstantiationException, ImportError, ValueError, TypeError) as exc:
            cause = exc.__cause__ or exc
            raise config_error(key, (str(cause).strip().splitlines() or [type(cause).__name__])[0]) from None
        out.append(logger)
    return out


def finish(
    loggers: list[Logger], hparams: Mapping[str, Any], final: Mapping[str, Mapping[str, float]] | None, status: str
) -> None:
    """End each logger's run, so the next stage starts its own (W&B keeps one run per process otherwise).

    ``final`` (domain -> {"loss": nats/token, "bpb": bits/byte}) becomes ``final/<domain>/<metric>``: the
    metrics of TensorBoard's hparams entry and W&B's run summary.
    """
    metrics = {f"final/{d}/{m}": float(v) for d, ms in (final or {}).items() for m, v in ms.items()}
    for logger in loggers:
        if metrics and isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(dict(hparams), metrics=metrics)  # the HPARAMS tab needs metrics
        elif metrics and isinstance(logger, WandbLogger):
            logger.experiment.summary.update(metrics)
        logger.finalize(status)
        if isinstance(logger, WandbLogger):
            logger.experiment.finish(exit_code=0 if status == "success" else 1)


class UpdateStepCSVLogger(CSVLogger):
    """CSV log whose ``step`` column is ``trainer.global_step`` (optimizer updates done) at log time.

    Lightning labels rows with an internal logging counter that it shifts by one when a run is
    resumed from a checkpoint not taken at ``on_train_batch_end``; the update count is restored
    exactly, so curves of a resumed stage line up with an uninterrupted one. Train metrics of
    update k are logged after it (step k + 1); a validation after k updates has step k.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trainer: Any = None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.trainer is not None:
            step = int(self.trainer.global_step)
        super().log_metrics(metrics, step)
