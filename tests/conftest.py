"""Shared fixtures: the real corpora directory (skips with a reason when absent), thread limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path | None:
    env = os.environ.get("CPT_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for c in candidates:
        if (c / "A_en_wikipedia.jsonl").is_file():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The directory holding the real corpora (``CPT_DATA_DIR`` or ``../shared/data``)."""
    d = _shared_data_dir()
    if d is None:
        pytest.skip("real corpora not found: set CPT_DATA_DIR to the folder with A_en_wikipedia.jsonl")
    return d


@pytest.fixture(scope="session")
def benchmark_dir(shared_data_dir: Path) -> Path:
    """The offline benchmark JSONL folder (``CPT_BENCHMARK_DIR`` or ``<data_dir>/benchmarks``)."""
    d = Path(os.environ.get("CPT_BENCHMARK_DIR", shared_data_dir / "benchmarks"))
    if not d.is_dir():
        pytest.skip(f"benchmark files not found in {d}: set CPT_BENCHMARK_DIR")
    return d


@pytest.fixture(autouse=True, scope="session")
def _limit_threads() -> None:
    # CI has 2 cores; more threads than cores only adds contention.
    try:
        import torch

        torch.set_num_threads(min(2, os.cpu_count() or 1))
    except ImportError:
        pass
