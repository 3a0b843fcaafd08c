"""Optional experiment loggers next to the always-on CSV log: TensorBoard and W&B.

W&B runs offline unless the user opts in (``logger.wandb_mode=online``), so a sweep on a
machine without network never blocks on a login prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger

from cpt_experiments.errors import config_error

KNOWN = ("tensorboard", "wandb")


def extra_loggers(logger_cfg: Mapping[str, Any], *, run_name: str, save_dir: str | Path) -> list[Any]:
    """Instantiate the loggers named in ``logger.extra`` for one stage."""
    out: list[Any] = []
    for name in logger_cfg["extra"]:
        if name == "tensorboard":
            from pytorch_lightning.loggers import TensorBoardLogger

            out.append(TensorBoardLogger(save_dir=str(save_dir), name="tensorboard"))
        elif name == "wandb":
            from pytorch_lightning.loggers import WandbLogger

            mode = str(logger_cfg["wandb_mode"])
            if mode not in ("offline", "online", "disabled"):
                raise config_error("logger.wandb_mode", f"must be offline, online or disabled, got {mode!r}")
            out.append(
                WandbLogger(
                    name=run_name,
                    project=logger_cfg["wandb_project"],
                    save_dir=str(save_dir),
                    offline=mode == "offline",
                    mode=mode,
                )
            )
        else:
            raise config_error("logger.extra", f"unknown logger {name!r} (known: csv is always on; {', '.join(KNOWN)})")
    return out


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
