"""The fingerprint of a mixture plan: a digest of everything that determines its stream (checkpoints store it, so a
resumed run refuses another plan). The digested bytes are a recorded format: changing them changes every stored
fingerprint.
"""

from __future__ import annotations

import hashlib

import numpy as np

from cpt_experiments.data.mixture_sources import SourceSpec
from cpt_experiments.hashing import canonical_json


def plan_fingerprint(
    sources: list[SourceSpec],
    *,
    num_windows: int,
    seed: int,
    batch_windows: int,
    block_batches: int,
    allow_repeat: bool,
) -> str:
    """SHA-256 (hex, 16 chars) of the plan's parameters and sources (an explicit order by its int64 bytes)."""
    h = hashlib.sha256()
    meta = {
        "v": 1,
        "num_windows": num_windows,
        "seed": seed,
        "batch_windows": batch_windows,
        "block_batches": block_batches,
        "allow_repeat": allow_repeat,
        "sources": [
            [s.name, int(s.num_windows), repr(float(s.weight)), s.order if isinstance(s.order, str) else "array"]
            for s in sources
        ],
    }
    h.update(canonical_json(meta, compact=False).encode())  # compact=False: the layout of the stored fingerprints
    for s in sources:
        if isinstance(s.order, np.ndarray):
            h.update(np.ascontiguousarray(s.order, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]
