"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module: the tiny evaluation models' matmuls take microseconds, and a
    second thread only adds contention on a shared 2-core machine (measured 25x slower forward passes
    under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
