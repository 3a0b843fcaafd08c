"""The lm-eval model wrapper: HFLM that scores long continuations in windows and batches by tokens.

Two changes to lm-eval's stock ``HFLM`` (tokenization, request building and the tasks' metrics
stay lm-eval's):

* a continuation longer than the context window is scored in consecutive pieces (stock HFLM
  asserts ``len(continuation) <= max_length``, which a 64-256-token model hits on PIQA or
  HellaSwag answers);
* with ``batch_tokens`` set, requests are scored by ``score_requests``: batches hold as many
  sequences as fit in ``batch_tokens`` padded tokens (thousands of 15-token BLiMP sentences, a
  few dozen 256-token rolling windows), and each batch's log-probabilities and greedy checks are
  computed in a handful of tensor operations. Stock HFLM runs several tensor operations per
  request, each of which costs milliseconds when a loaded 2-core machine has to wake two
  threads (measured: an ``argmax`` over one 15 x 4096 slice took 14 ms with 2 threads, 0.5 ms
  with 1), so 13k BLiMP requests spent minutes outside the model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

#: One loglikelihood request as HFLM passes it around: (cache key, context tokens, continuation tokens).
Request = tuple[Any, list[int], list[int]]


def batch_capacity(n_tokens: int, batch_tokens: int, max_batch: int) -> int:
    """Sequences of ``n_tokens`` (padded) tokens per batch: ``batch_tokens // n_tokens``, in [1, max_batch]."""
    return max(1, min(max_batch, batch_tokens // max(1, n_tokens)))


def score_requests(
    model_call: Callable[[Any], Any],
    requests: Sequence[Request],
    *,
    max_length: int,
    batch_tokens: int,
    max_batch: int,
    device: Any = "cpu",
) -> list[tuple[float, bool]]:
    """(sum of log p(continuation) in nats, whether it is the greedy continuation) per request.

    Each request is scored like stock HFLM: the model reads ``(context + continuation)[-(max_length
    + 1):][:-1]`` (left truncation) and the last ``len(continuation)`` positions predict the
    continuation (``len(continuation) <= max_length``). Identical requests are scored once;
    sequences are sorted longest first and right-padded within a batch (causal attention, so
    padding after a sequence never changes its scores). ``model_call`` maps a ``[batch, tokens]``
    long tensor (on ``device``) to ``[batch, tokens, vocab]`` logits.
    """
    import torch

    unique: dict[tuple[tuple[int, ...], int], int] = {}
    index = [unique.setdefault((tuple(c + t), len(t)), len(unique)) for _, c, t in requests]
    keys = list(unique)
    inputs = [list(seq[-(max_length + 1) :][:-1]) for seq, _ in keys]
    order = sorted(range(len(keys)), key=lambda i: -len(inputs[i]))
    scores: list[tuple[float, bool]] = [(0.0, False)] * len(keys)
    pos = 0
    while pos < len(order):
        width = len(inputs[order[pos]])
        batch = order[pos : pos + batch_capacity(width, batch_tokens, max_batch)]
        pos += len(batch)
        tokens = torch.zeros((len(batch), width), dtype=torch.long)
        targets = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.bool)
        for row, i in enumerate(batch):
            seq, n_cont = inputs[i], keys[i][1]
            tokens[row, : len(seq)] = torch.tensor(seq)
            targets[row, len(seq) - n_cont : len(seq)] = torch.tensor(keys[i][0][-n_cont:])
            mask[row, len(seq) - n_cont : len(seq)] = True
        tokens, targets, mask = tokens.to(device), targets.to(device), mask.to(device)
        with torch.no_grad():
            logits = model_call(tokens).float()
            # log p(target) = logit(target) - logsumexp(logits): no [batch, tokens, vocab] log-softmax copy.
            logp = logits.gather(-1, targets[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
            greedy = (logits.argmax(dim=-1) == targets) | ~mask
            sums = (logp * mask).sum(dim=1, dtype=torch.float64).tolist()
            all_greedy = greedy.all(dim=1).tolist()
        for row, i in enumerate(batch):
            scores[i] = (float(sums[row]), bool(all_greedy[row]))
    return [scores[i] for i in index]


@functools.lru_cache(maxsize=1)
def windowed_hflm() -> type:
    """The HFLM subclass (built lazily: importing lm-eval takes seconds)."""
    from lm_eval.models.huggingface import HFLM

    class WindowedHFLM(HFLM):
        """HFLM with windowed long continuations and, with ``batch_tokens``, token-budget batches.

        ``batch_tokens`` is the padded tokens per forward pass (``None``: stock HFLM batching of
        ``batch_size`` sequences); ``batch_size`` then caps the sequences per batch.
        """

        def __init__(self, *args: Any, batch_tokens: int | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._batch_tokens = batch_tokens

        def _score(self, requests: list, disable_tqdm: bool, override_bs: int | None) -> list[tuple[float, bool]]:
            if self._batch_tokens is None:
                return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
            out = score_requests(
                self._model_call,
                requests,
                max_length=self.max_length,
                batch_tokens=self._batch_tokens,
                max_batch=int(self.batch_size),
                device=self.device,
            )
            for (key, _, _), answer in zip(requests, out):
                if key is not None:  # as stock HFLM: rolling windows (key None) are cached per document
                    self.cache_hook.add_partial("loglikelihood", key, answer)
            return out

        def _loglikelihood_tokens(self, requests, disable_tqdm=False, override_bs=None):  # type: ignore[override]
            width = self.max_length
            if all(len(cont) <= width for _, _, cont in requests):
                return self._score(requests, disable_tqdm, override_bs)
            pieces, owner = [], []
            for i, (key, context, cont) in enumerate(requests):
                if len(cont) <= width:
                    pieces.append((key, context, cont))
                    owner.append(i)
                    continue
                for start in range(0, len(cont), width):
                    # key None: a piece's score must not enter lm-eval's cache under the full request.
                    pieces.append((None, context + cont[:start], cont[start : start + width]))
                    owner.append(i)
            totals, greedy = [0.0] * len(requests), [True] * len(requests)
            for i, (logprob, is_greedy) in zip(owner, self._score(pieces, disable_tqdm, override_bs)):
                totals[i] += logprob
                greedy[i] = greedy[i] and bool(is_greedy)
            return list(zip(totals, greedy))

    return WindowedHFLM
