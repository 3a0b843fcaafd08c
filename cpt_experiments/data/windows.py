"""Fixed-length training windows over a 1-D token array (nanoGPT's memmap contract).

Every window has the same number of tokens, so a fraction of windows is the same fraction of tokens:
a 5% replay share in windows is a 5% share in tokens.
"""

from __future__ import annotations

import numpy as np

from cpt_experiments.errors import config_error


class TokenWindows:
    """Window ``i`` is ``tokens[i*seq_len : i*seq_len + seq_len + 1]``: ``seq_len`` inputs plus the shifted target.

    Consecutive windows share one boundary token, so ``len = (len(tokens) - 1) // seq_len``.
    ``tokens`` may be an ``np.memmap`` (uint16/uint32); it is only sliced, never copied whole.
    """

    def __init__(self, tokens: np.ndarray, seq_len: int) -> None:
        if int(seq_len) != seq_len or seq_len < 1:
            raise config_error("data.seq_len", f"must be a positive integer, got {seq_len!r}")
        if tokens.ndim != 1:
            raise config_error("data.tokens", f"token array must be 1-D, got shape {tokens.shape}")
        self.tokens = tokens
        self.seq_len = int(seq_len)
        self._offsets = np.arange(self.seq_len + 1, dtype=np.int64)  # (T+1,)

    def __len__(self) -> int:
        return max(0, (len(self.tokens) - 1) // self.seq_len)

    def __getitem__(self, i: int) -> np.ndarray:
        """One window as an int64 array of ``seq_len + 1`` tokens."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"window {i} out of range for {n} windows")
        start = (i % n) * self.seq_len
        return np.asarray(self.tokens[start : start + self.seq_len + 1], dtype=np.int64)

    def gather(self, indices: np.ndarray) -> np.ndarray:
        """Windows ``indices`` stacked as int64, shape ``(len(indices), seq_len + 1)``; one fancy-index read."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"window indices outside [0, {len(self)})")
        flat = (idx[:, None] * self.seq_len + self._offsets[None, :]).ravel()  # (B*(T+1),)
        return np.asarray(self.tokens[flat], dtype=np.int64).reshape(len(idx), self.seq_len + 1)
