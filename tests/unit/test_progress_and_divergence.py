"""The progress line reports step, tokens, rate and ETA; a NaN loss stops the stage within a few steps."""

from __future__ import annotations

import logging

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from cpt_experiments.training.callbacks.finite_loss import FiniteLoss, TrainingDiverged
from cpt_experiments.training.callbacks.progress import ProgressLine


class _Toy(pl.LightningModule):
    """One weight; the loss turns NaN from step ``nan_from`` on (an exploding run)."""

    def __init__(self, nan_from: int | None = None) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.nan_from = nan_from

    def training_step(self, batch, batch_idx):
        loss = (self.w * batch).pow(2).mean()
        if self.nan_from is not None and self.global_step >= self.nan_from:
            loss = loss * float("nan")
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(module: pl.LightningModule, steps: int, callbacks: list[pl.Callback]) -> pl.Trainer:
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)  # fmt: skip
    trainer.fit(module, DataLoader([torch.ones(2)] * steps, batch_size=None))
    return trainer


def test_nan_loss_stops_the_stage_within_a_few_steps() -> None:
    with pytest.raises(TrainingDiverged, match=r"^training loss is nan at step (5|6|7|8) "):
        _fit(_Toy(nan_from=5), 40, [FiniteLoss(every_n_steps=4)])


def test_finite_loss_trains_to_the_end() -> None:
    assert _fit(_Toy(), 10, [FiniteLoss(every_n_steps=1)]).global_step == 10


def test_progress_line_reports_step_tokens_and_eta(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="cpt_experiments.training.callbacks.progress"):
        _fit(_Toy(), 6, [ProgressLine("pretrain", total_steps=6, tokens_per_step=1000, every_s=0.0)])
    lines = [r.getMessage() for r in caplog.records]
    assert lines[-1].startswith("stage pretrain: step 6/6 (100%), 0.01M tokens") and "tokens/s, ETA 0m00s" in lines[-1]
    assert any("loss" in line for line in lines[:-1])
