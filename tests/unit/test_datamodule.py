"""CPTDataModule: batches reveal their origin, val loaders per domain, loader resume, Lightning resume."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from cpt_experiments.config import ReplayConfig
from cpt_experiments.data.mixing import MixturePlan
from cpt_experiments.data.mixture_sources import SourceSpec
from cpt_experiments.data.replay import Replay
from cpt_experiments.data.sampler import PlanBatchSampler
from cpt_experiments.errors import ConfigError
from cpt_experiments.training.datamodule import CPTDataModule

SEQ = 8


def _tokens(d: int, num_windows: int) -> np.ndarray:
    """Source d: tokens ``arange + d*1e6`` (uint32), so every window reveals its source and index."""
    return (np.arange(num_windows * SEQ + 1) + d * 10**6).astype(np.uint32)


def _dm(*, accumulate: int = 1, micro: int = 4, steps: int = 10, seed: int = 0, ratio: float = 0.25) -> CPTDataModule:
    w = Replay.from_config(ReplayConfig(ratio=ratio, sources={"A": 1.0})).mix({"B": 1.0})
    plan = MixturePlan(
        [SourceSpec("B", 100, w["B"]), SourceSpec("A", 80, w["A"])],
        micro * accumulate * steps,
        seed=seed,
        batch_windows=micro * accumulate,
    )
    return CPTDataModule({"A": _tokens(0, 80), "B": _tokens(1, 100)}, plan, SEQ, micro, accumulate=accumulate)


def test_train_batches_match_the_plan_and_reveal_their_origin() -> None:
    dm = _dm()
    batches = list(dm.train_dataloader())
    assert len(batches) == 10
    b = batches[3]
    assert b["tokens"].dtype == torch.long and b["tokens"].shape == (4, SEQ + 1)
    assert b["position"].tolist() == [12, 13, 14, 15]
    src, win = dm.plan.lookup(b["position"].numpy())
    assert b["source"].tolist() == src.tolist()
    code = {"B": 1, "A": 0}
    for row, s, w in zip(b["tokens"].tolist(), src, win):
        first = code[dm.plan.names[s]] * 10**6 + w * SEQ
        assert row == list(range(first, first + SEQ + 1))
    sources = torch.cat([x["source"] for x in batches])
    assert (sources == 1).sum().item() == 10  # 25% of 40 windows are replay


def test_loader_resume_from_state_equals_suffix() -> None:
    full = [b["position"].tolist() for b in _dm(accumulate=2).train_dataloader()]
    dm = _dm(accumulate=2)
    dm.load_state_dict({**_dm(accumulate=2).state_dict(), "global_step": 3})
    resumed = [b["position"].tolist() for b in dm.train_dataloader()]
    assert resumed == full[6:] and resumed[0] == list(range(24, 28))


def test_resume_with_another_plan_is_refused() -> None:
    state = _dm(seed=0).state_dict()
    with pytest.raises(ConfigError, match=r"^resume\.ckpt_path: checkpoint data plan"):
        _dm(seed=1).load_state_dict(state)


def test_plan_and_arrays_must_agree() -> None:
    plan = MixturePlan([SourceSpec("A", 81, 1.0)], 8, seed=0, batch_windows=4)
    with pytest.raises(ConfigError, match=r"^data\.train_sources\.A: has 80 windows"):
        CPTDataModule({"A": _tokens(0, 80)}, plan, SEQ, 4)
    with pytest.raises(ConfigError, match=r"^mixing\.batch_windows: "):
        CPTDataModule({"A": _tokens(0, 81)}, plan, SEQ, 2).train_dataloader()


class _Recorder(pl.LightningModule):
    """Tiny model that records the positions of every micro-batch it trains on."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)
        self.positions: list[list[int]] = []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.positions.append(batch["position"].tolist())
        return self.lin(batch["tokens"][:, :1].float()).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(
    dm: CPTDataModule, max_steps: int, ckpt_dir: Path, *, save_every: int | None = None, ckpt_path: str | None = None
) -> _Recorder:
    callbacks = [pl.callbacks.ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=save_every, save_top_k=-1)]
    trainer = pl.Trainer(
        max_steps=max_steps,
        accumulate_grad_batches=dm.accumulate,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=True,
        callbacks=callbacks,
        use_distributed_sampler=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    model = _Recorder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    assert trainer.global_step == max_steps
    return model


def test_lightning_resume_consumes_exactly_the_remaining_positions(tmp_path: Path) -> None:
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    k, steps, acc, micro = 3, 7, 2, 4
    g = micro * acc
    full = _fit(_dm(accumulate=acc, steps=steps), steps, tmp_path / "full").positions
    assert sum(full, []) == list(range(steps * g))

    first = _fit(_dm(accumulate=acc, steps=steps), k, tmp_path / "run", save_every=k).positions
    ckpt = tmp_path / "run" / f"epoch=0-step={k}.ckpt"
    assert ckpt.is_file() and first == full[: k * acc]
    state = torch.load(ckpt, weights_only=False)["CPTDataModule"]
    assert state["global_step"] == k

    resumed = _fit(_dm(accumulate=acc, steps=steps), steps, tmp_path / "run2", ckpt_path=str(ckpt)).positions
    assert sum(resumed, []) == list(range(k * g, steps * g))  # exactly [k*G, end): no repeat, no skip

    with pytest.raises(ConfigError, match=r"^resume\.ckpt_path: "):
        _fit(_dm(accumulate=acc, steps=steps, seed=5), steps, tmp_path / "run3", ckpt_path=str(ckpt))


def test_sampler_matches_loader_positions() -> None:
    dm = _dm(accumulate=2)
    via_loader = [b["position"].tolist() for b in dm.train_dataloader()]
    assert via_loader == list(PlanBatchSampler(len(dm.plan), 4, accumulate=2))
