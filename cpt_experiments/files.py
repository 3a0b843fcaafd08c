"""Where the checkout's files are and whether a folder takes files: one definition each (file hashes: ``hashing``).

``REPO_ROOT`` is the checkout (or the editable install's source tree) that holds ``conf/`` and ``results/``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _conf_dir() -> Path:
    """The Hydra config tree: the checkout's top-level ``conf/`` (source tree, editable install), else the
    copy a built wheel ships inside the package (``cpt_experiments/conf``, put there by ``setup.py``)."""
    checkout = REPO_ROOT / "conf"
    return checkout if (checkout / "train.yaml").is_file() else Path(__file__).resolve().parent / "conf"


CONF_DIR = _conf_dir()  # absolute, so `@hydra.main(config_path=str(CONF_DIR))` works from any directory
SAMPLE_DATA_DIR = Path(__file__).resolve().parent / "data" / "sample"  # the embedded sample: read-only package data


def probe_writable(directory: str | os.PathLike) -> None:
    """Create ``directory`` if needed and write and remove an empty file in it; OSError if it takes none (so a
    command fails before any work, not after hours of training)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f".write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()
