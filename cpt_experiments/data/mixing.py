"""A deterministic mixture plan: global window position -> (source, window), with exact per-block quotas.

Why exact quotas: Paper 1 applies replay per batch (GPT-NeoX blends every 1104-sample batch to x% +- 1,
paper 1, §4.2), and mixtures that only hold "on average" drift visibly. Here every block of
``block_batches * batch_windows`` consecutive positions holds a fixed count per source. The plan is a pure function
of its arguments; position ``p`` is resolved in O(block + sources) without materialising the stage.
The sources and their checks are ``data.mixture_sources``, block sizes and quotas ``data.mixture_quotas``, the
plan's digest ``data.mixture_fingerprint``. Pure numpy, no torch.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np

from cpt_experiments.data.mixture_fingerprint import plan_fingerprint
from cpt_experiments.data.mixture_quotas import choose_block, largest_remainder
from cpt_experiments.data.mixture_sources import SourceSpec, validate_sources
from cpt_experiments.errors import config_error

log = logging.getLogger(__name__)


class MixturePlan:
    """Maps every position ``0 <= p < num_windows`` of a stage to ``(source index, window index)``.

    Block ``b`` covers positions ``[b*B, (b+1)*B)`` with ``B = block_batches * batch_windows``. If ``weights * B`` are
    integers, every block holds exactly that many windows per source; otherwise cumulative counts at every block
    boundary ``n`` are the largest-remainder rounding of ``weights * n`` (so ``|count_d - w_d*n| < 1``). Inside a block
    each source is spread evenly (every batch holds its share +-1) and positions are shuffled within each batch with
    ``default_rng([seed, b])``; the k-th draw of source d (in position order) reads
    ``order_d[k mod available_d]``, where a ``"shuffle"`` order is ``default_rng([seed, d, epoch]).permutation``.
    """

    def __init__(
        self,
        sources: list[SourceSpec],
        num_windows: int,
        *,
        seed: int,
        batch_windows: int,
        block_batches: int | None = None,
        allow_repeat: bool = False,
    ) -> None:
        self.sources = list(sources)
        self.num_windows = int(num_windows)
        self.seed = int(seed)
        self.batch_windows = int(batch_windows)
        self.allow_repeat = bool(allow_repeat)
        validate_sources(self.sources, num_windows, seed, batch_windows)
        self.names = [s.name for s in self.sources]
        w = np.array([float(s.weight) for s in self.sources], dtype=np.float64)
        self.weights = w / w.sum()
        self.block_batches, self._exact = choose_block(self.weights, self.names, self.batch_windows, block_batches)
        self.block_windows = self.block_batches * self.batch_windows
        self._quota = np.rint(self.weights * self.block_windows).astype(np.int64) if self._exact else None
        self._blocks: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._perms: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._check_supply()

    # ---- supply ------------------------------------------------------------------------------------------------
    def _check_supply(self) -> None:
        needed = self.counts(0, self.num_windows)
        for s in self.sources:
            if needed[s.name] > s.available and not self.allow_repeat:
                raise config_error(
                    f"mixing.sources.{s.name}",
                    f"needs {needed[s.name]} windows but has {s.available}; "
                    "lower its weight, shorten the stage or set allow_repeat=true",
                )
        epochs = self.epochs_per_source()
        repeated = {n: round(e, 3) for n, e in epochs.items() if e > 1}
        if repeated:
            log.info("mixture repeats sources (epochs per source): %s", repeated)

    # ---- quotas and accounting ---------------------------------------------------------------------------------
    def _cumulative(self, block_id: int) -> np.ndarray:
        """Windows per source in positions ``[0, block_id * block_windows)``."""
        if self._exact:
            return self._quota * block_id
        return largest_remainder(self.weights, block_id * self.block_windows)

    def block(self, block_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(source, draw)`` per position of block ``block_id``: int64 arrays of length ``block_windows``.

        ``draw`` is the source-local draw counter k (the k-th window taken from that source in stage order)."""
        hit = self._blocks.get(block_id)
        if hit is not None:
            self._blocks.move_to_end(block_id)
            return hit
        start, stop = self._cumulative(block_id), self._cumulative(block_id + 1)
        quota = stop - start
        src = self._spread(quota, np.random.default_rng([self.seed, block_id]))
        by_src = np.argsort(src, kind="stable")
        group_start = np.concatenate(([0], np.cumsum(quota)[:-1]))
        draw = np.empty_like(src)
        draw[by_src] = start[src[by_src]] + np.arange(len(src)) - group_start[src[by_src]]
        self._blocks[block_id] = (src, draw)
        if len(self._blocks) > 4:
            self._blocks.popitem(last=False)
        return src, draw

    def _spread(self, quota: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Source per block position: each source evenly spaced over the block (so every batch holds its share
        within +-1, as GPT-NeoX's per-batch blend does), then shuffled within each batch so sources interleave."""
        src = np.repeat(np.arange(len(quota), dtype=np.int64), quota)
        keys = np.concatenate([(np.arange(q) + 0.5) / q for q in quota if q > 0])
        src = src[np.argsort(keys, kind="stable")]
        batch_of = np.arange(len(src)) // self.batch_windows
        return src[np.lexsort((rng.random(len(src)), batch_of))]

    def _counts_before(self, p: int) -> np.ndarray:
        b, r = divmod(int(p), self.block_windows)
        c = self._cumulative(b)
        if r:
            c = c + np.bincount(self.block(b)[0][:r], minlength=len(self.sources))
        return c

    def counts(self, start: int, stop: int) -> dict[str, int]:
        """Windows taken from each source in positions ``[start, stop)``."""
        if not 0 <= start <= stop <= self.num_windows:
            raise IndexError(f"position range [{start}, {stop}) outside [0, {self.num_windows}]")
        c = self._counts_before(stop) - self._counts_before(start)
        return {n: int(x) for n, x in zip(self.names, c)}

    def realised_fractions(self, start: int, stop: int) -> dict[str, float]:
        """Share of windows (= tokens) per source over ``[start, stop)``; compare with ``weights``."""
        c = self.counts(start, stop)
        return {n: x / max(1, stop - start) for n, x in c.items()}

    def epochs_per_source(self) -> dict[str, float]:
        """Passes over each source's available windows during the stage (> 1 means repetition)."""
        needed = self.counts(0, self.num_windows)
        return {s.name: needed[s.name] / s.available if s.available else 0.0 for s in self.sources}

    # ---- lookup ------------------------------------------------------------------------------------------------
    def _permutation(self, d: int, epoch: int) -> np.ndarray:
        key = (d, epoch)
        hit = self._perms.get(key)
        if hit is None:
            n = self.sources[d].num_windows
            hit = np.random.default_rng([self.seed, d, epoch]).permutation(n).astype(np.int64)
            self._perms[key] = hit
            if len(self._perms) > 2 * len(self.sources):
                self._perms.popitem(last=False)
        else:
            self._perms.move_to_end(key)
        return hit

    def window_of_draw(self, d: int, draws: np.ndarray) -> np.ndarray:
        """Window indices of source ``d`` for source-local draw counters ``draws`` (int64 array)."""
        s = self.sources[d]
        k = np.asarray(draws, dtype=np.int64)
        if isinstance(s.order, np.ndarray):
            return s.order[k % len(s.order)].astype(np.int64)
        if s.order == "sequential":
            return k % s.num_windows
        epoch, idx = np.divmod(k, s.num_windows)
        out = np.empty_like(k)
        for e in np.unique(epoch):
            sel = epoch == e
            out[sel] = self._permutation(d, int(e))[idx[sel]]
        return out

    def lookup(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(source index, window index)`` for each global position, as int64 arrays."""
        pos = np.asarray(positions, dtype=np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= self.num_windows):
            raise IndexError(f"positions outside [0, {self.num_windows})")
        src = np.empty_like(pos)
        draw = np.empty_like(pos)
        blk, off = np.divmod(pos, self.block_windows)
        for b in np.unique(blk):
            sel = blk == b
            bs, bd = self.block(int(b))
            src[sel], draw[sel] = bs[off[sel]], bd[off[sel]]
        win = np.empty_like(pos)
        for d in np.unique(src):
            sel = src == d
            win[sel] = self.window_of_draw(int(d), draw[sel])
        return src, win

    def __len__(self) -> int:
        return self.num_windows

    def fingerprint(self) -> str:
        """SHA-256 (hex, 16 chars) of everything that determines the stream; equal plans give equal streams."""
        return plan_fingerprint(
            self.sources,
            num_windows=self.num_windows,
            seed=self.seed,
            batch_windows=self.batch_windows,
            block_batches=self.block_batches,
            allow_repeat=self.allow_repeat,
        )
