"""The per-rank micro batch and accumulation that split a fixed global batch over the ranks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cpt_experiments.errors import ConfigError
from cpt_experiments.training.trainer import accumulation, micro_batch


def _geometry(global_batch: int, micro: int, devices: int):
    return SimpleNamespace(global_batch_windows=global_batch, micro_batch=micro), SimpleNamespace(
        devices=devices, num_nodes=1
    )


@pytest.mark.parametrize(
    ("global_batch", "micro", "devices", "expected"),
    [(16, 16, 1, (16, 1)), (16, 4, 1, (4, 4)), (8, 8, 2, (4, 1)), (1104, 8, 8, (6, 23)), (16, 16, 2, (8, 1))],
)
def test_micro_batch_shrinks_only_when_the_ranks_need_it(global_batch, micro, devices, expected) -> None:
    train, trainer = _geometry(global_batch, micro, devices)
    assert (micro_batch(train, trainer), accumulation(train, trainer)) == expected


def test_a_global_batch_that_no_rank_split_fits_names_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"train.global_batch_windows: 9 windows cannot be split over 2 ranks: set"):
        micro_batch(*_geometry(9, 3, 2))
    with pytest.raises(ConfigError, match=r"12 is not a multiple of train.micro_batch x world size = 8 x 1"):
        micro_batch(*_geometry(12, 8, 1))  # the README's bad-input row: a micro batch that fits no process
