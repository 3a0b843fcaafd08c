"""LRScheduleCallback: the LR applied at every optimizer step equals schedule(step), also after resume."""

from __future__ import annotations

import copy
import csv
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from cpt_experiments.schedules import build_schedule
from cpt_experiments.training.callbacks.lr_schedule import LRScheduleCallback

# W = 2, T = 12: 0, 0.5, 1.0, then cosine to 0.1 at step 12; every step has a distinct LR.
SPEC = {"name": "warmup_cosine", "max_lr": 1.0, "min_lr": 0.1, "warmup_frac": 2 / 12}
MAX_STEPS = 12


class TinyModule(pl.LightningModule):
    """A 4→1 linear regression; the second param group (bias) carries ``lr_scale``."""

    def __init__(self, bias_lr_scale: float | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.bias_lr_scale = bias_lr_scale

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.bias_lr_scale is None:
            return torch.optim.SGD(self.parameters(), lr=123.0)  # the callback must overwrite this
        groups = [{"params": [self.layer.weight]}, {"params": [self.layer.bias], "lr_scale": self.bias_lr_scale}]
        return torch.optim.SGD(groups, lr=123.0)

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(16, 4, generator=g)  # 8 batches = 4 optimizer steps per epoch: 12 steps span 3 epochs
        return DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=2)


class LRProbe(pl.Callback):
    """Records (global_step, lr of every group) just before each optimizer step."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, list[float]]] = []

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        self.seen.append((trainer.global_step, [g["lr"] for g in trainer.optimizers[0].param_groups]))


def _fit(module: pl.LightningModule, max_steps: int, root: Path, ckpt_path: str | None = None, logger=False):
    schedule = build_schedule(SPEC, MAX_STEPS)
    probe = LRProbe()
    trainer = pl.Trainer(
        max_steps=max_steps,
        accumulate_grad_batches=2,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=logger,
        accelerator="cpu",
        devices=1,
        default_root_dir=root,
    )
    # The probe comes first: the schedule must already be applied whatever the callback order.
    trainer.callbacks = [probe, LRScheduleCallback(schedule)] + trainer.callbacks
    trainer.fit(module, ckpt_path=ckpt_path)
    return trainer, probe, schedule


def test_lr_applied_each_optimizer_step_equals_schedule(tmp_path: Path) -> None:
    pl.seed_everything(0)
    trainer, probe, schedule = _fit(TinyModule(), MAX_STEPS, tmp_path)
    assert [step for step, _ in probe.seen] == list(range(MAX_STEPS))  # one optimizer step per 2 batches
    assert [lrs[0] for _, lrs in probe.seen] == [schedule(step) for step in range(MAX_STEPS)]
    assert probe.seen[0][1] == [0.0] and probe.seen[2][1] == [1.0]  # warmup from 0 reaches the peak at W
    assert trainer.lr_scheduler_configs == []


def test_lr_scale_applies_per_group(tmp_path: Path) -> None:
    pl.seed_everything(0)
    _, probe, schedule = _fit(TinyModule(bias_lr_scale=0.25), MAX_STEPS, tmp_path)
    assert [lrs for _, lrs in probe.seen] == [[schedule(s), 0.25 * schedule(s)] for s in range(MAX_STEPS)]


def test_logged_lr_is_the_applied_lr(tmp_path: Path) -> None:
    pl.seed_everything(0)
    logger = CSVLogger(tmp_path, name="lr", version=0)
    _, probe, schedule = _fit(TinyModule(), MAX_STEPS, tmp_path, logger=logger)
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as fh:
        logged = [float(row["train/lr"]) for row in csv.DictReader(fh) if row.get("train/lr")]
    assert logged == pytest.approx([schedule(s) for s in range(MAX_STEPS)], rel=1e-6)


@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before the epoch ended")
def test_resume_reproduces_the_lr_sequence(tmp_path: Path) -> None:
    pl.seed_everything(0)
    _, full, _ = _fit(TinyModule(), MAX_STEPS, tmp_path / "full")
    pl.seed_everything(0)
    first, head, _ = _fit(TinyModule(), 6, tmp_path / "head")
    ckpt = tmp_path / "step6.ckpt"
    first.save_checkpoint(ckpt)
    pl.seed_everything(0)
    _, tail, _ = _fit(TinyModule(), MAX_STEPS, tmp_path / "tail", ckpt_path=str(ckpt))
    assert [s for s, _ in tail.seen] == list(range(6, MAX_STEPS))
    assert head.seen + tail.seen == full.seen


class _Recorder:
    def __init__(self) -> None:
        self.logged: list[tuple[str, float, dict]] = []

    def log(self, key: str, value: float, **kwargs) -> None:
        self.logged.append((key, value, kwargs))


def test_stateless_write_is_idempotent_and_depends_only_on_global_step() -> None:
    schedule = build_schedule(SPEC, MAX_STEPS)
    opt = torch.optim.SGD([{"params": [torch.zeros(1)]}, {"params": [torch.zeros(1)], "lr_scale": 2.0}], lr=9.0)
    callback, module = LRScheduleCallback(schedule, log_key="lr"), _Recorder()
    for step in (7, 7, 3):  # two micro-batches of step 7, then a "resume" at step 3
        callback.on_train_batch_start(SimpleNamespace(global_step=step, optimizers=[opt]), module, None, 0)
        assert [g["lr"] for g in opt.param_groups] == [schedule(step), 2.0 * schedule(step)]
    assert module.logged[-1] == ("lr", schedule(3), {"on_step": True, "on_epoch": False})
    assert callback.state_dict() == {}


def test_callback_pickles_and_deepcopies() -> None:
    callback = LRScheduleCallback(build_schedule(SPEC, MAX_STEPS))
    for clone in (pickle.loads(pickle.dumps(callback)), copy.deepcopy(callback)):
        assert [clone.schedule(s) for s in range(MAX_STEPS)] == [callback.schedule(s) for s in range(MAX_STEPS)]
        assert clone.log_key == "train/lr"


def test_domain_validation_is_due_periodically_and_at_the_early_steps() -> None:
    from cpt_experiments.training.callbacks.domain_validation import DomainValidation

    cb = DomainValidation({}, every_n_steps=128, early_steps=[4, 8])
    assert [s for s in range(0, 300) if cb.due(s)] == [4, 8, 128, 256]
    assert [s for s in range(0, 10) if DomainValidation({}, every_n_steps=3).due(s)] == [3, 6, 9]
