"""Run lm-eval in process on our own model and tokenizer objects; return tidy result rows.

The tasks and the TaskManager that finds them come from ``task_resolution`` (checked before the
model moves); the model runs wrapped by ``lm.windowed_hflm`` inside ``runtime.lm_eval_runtime``
(cached prompt templates, quiet output). Rows: one per task x metric (``results_to_rows``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

from cpt_experiments.eval.checkpoint import load_checkpoint
from cpt_experiments.eval.lm import windowed_hflm
from cpt_experiments.eval.runtime import lm_eval_runtime
from cpt_experiments.eval.task_resolution import task_manager_for

log = logging.getLogger(__name__)

ROW_KEYS = ("task", "task_version", "num_fewshot", "metric", "value", "stderr", "limit")


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan  # "N/A" stderr, or a task without a numeric version


def results_to_rows(results: dict, limit: int | float | None) -> list[dict]:
    """Tidy rows (one per task x metric) from ``simple_evaluate``'s output.

    ``stderr`` is NaN when lm-eval reports "N/A" (e.g. no bootstrap); ``limit`` is the
    requested per-task document limit (``None`` = all documents).
    """
    rows = []
    for task, metrics in sorted(results["results"].items()):
        for key, value in sorted(metrics.items()):
            if "," not in key or "_stderr," in key:
                continue  # "alias", "samples" and the stderr entries themselves
            metric, filt = key.split(",", 1)
            rows.append(
                {
                    "task": task,
                    "task_version": _as_float(results.get("versions", {}).get(task)),
                    "num_fewshot": int(results.get("n-shot", {}).get(task, 0)),
                    "metric": metric if filt == "none" else f"{metric},{filt}",
                    "value": float(value),
                    "stderr": _as_float(metrics.get(f"{metric}_stderr,{filt}")),
                    "limit": limit,
                }
            )
    return rows


def log_summary(rows: Sequence[dict], tasks: Sequence[str]) -> None:
    """One INFO line per requested task (a group's line shows its aggregate, not its members)."""
    for task in tasks:
        parts = [
            f"{r['metric']} {r['value']:.4f}" + ("" if math.isnan(r["stderr"]) else f" ± {r['stderr']:.4f}")
            for r in rows
            if r["task"] == task
        ]
        log.info("%s: %s", task, ", ".join(parts) or "no results")


def evaluate_model(
    model: Any,
    tokenizer: Any,
    tasks: Sequence[str],
    *,
    benchmark_dir: str | os.PathLike | None = None,
    num_fewshot: int | None = None,
    limit: int | float | None = None,
    batch_size: int = 8,
    batch_tokens: int | None = None,
    device: str = "cpu",
    extra_include_dirs: Sequence[str | os.PathLike] = (),
    seed: int = 0,
    max_length: int | None = None,
    offline: bool = False,
    cache_dir: str | os.PathLike | None = None,
    bootstrap_iters: int = 1000,
    quiet: bool = True,
    cache_templates: bool = True,
) -> list[dict]:
    """Evaluate a causal LM object with lm-eval's ``simple_evaluate``; return tidy rows.

    ``model`` is a ``transformers`` causal LM and ``tokenizer`` its tokenizer object (always
    passed: without it HFLM would load one from ``model.name_or_path``). ``max_length``
    (tokens) defaults to the model's ``max_position_embeddings``; longer contexts are truncated
    from the left, longer continuations scored in windows, and rolling perplexity uses windows
    of this length. ``limit`` caps the documents per task (a float < 1 is a fraction; the first
    documents of each task, so the subset is deterministic). ``offline=True`` never indexes stock
    tasks. The offline task folder is rendered under ``<cache_dir>/lm_eval_tasks``
    (``task_resolution.render_offline_tasks``).
    ``batch_tokens`` (padded tokens per forward pass) sizes each batch by its sequences' length,
    with ``batch_size`` as the cap on sequences; ``None`` keeps ``batch_size`` sequences per batch.
    ``bootstrap_iters`` is used for the stderr of non-mean metrics (perplexity); 0 skips it.
    ``quiet`` silences lm-eval (``eval.runtime``) and logs one line per requested task instead;
    ``cache_templates=False`` lets lm-eval compile its prompt templates per document, as it does
    by itself (only to measure what the cache saves).
    The model is moved to ``device`` and left there, in the train/eval mode it came in.
    Rows: see ``results_to_rows``.
    """
    manager = task_manager_for(tasks, benchmark_dir, extra_include_dirs, offline=offline, cache_dir=cache_dir)
    if max_length is None:
        max_length = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
    with _on_device(model, device), lm_eval_runtime(quiet, cache_templates):
        lm = windowed_hflm()(
            pretrained=model,
            tokenizer=tokenizer,
            batch_size=batch_size,
            batch_tokens=batch_tokens,
            max_length=max_length,
        )
        results = _simple_evaluate(lm, tasks, manager, num_fewshot, limit, bootstrap_iters, seed)
    if results is None:  # only on non-zero ranks in distributed runs
        return []
    rows = results_to_rows(results, limit)
    if quiet:
        log_summary(rows, tasks)
    return rows


@contextlib.contextmanager
def _on_device(model: Any, device: str) -> Iterator[None]:
    """Move ``model`` to ``device`` for the block (it stays there), then restore its train/eval mode."""
    was_training = model.training
    model.to(device)
    try:
        yield
    finally:
        model.train(was_training)


def _simple_evaluate(
    lm: Any,
    tasks: Sequence[str],
    manager: Any,
    num_fewshot: int | None,
    limit: int | float | None,
    bootstrap_iters: int,
    seed: int,
) -> dict | None:
    """lm-eval's ``simple_evaluate`` of ``lm`` on ``tasks``, every random seed set to ``seed``, no samples kept."""
    import lm_eval

    return lm_eval.simple_evaluate(
        model=lm,
        tasks=list(tasks),
        num_fewshot=num_fewshot,
        limit=limit,
        task_manager=manager,
        log_samples=False,
        bootstrap_iters=bootstrap_iters,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )


def evaluate_checkpoint(checkpoint_dir: str | os.PathLike, tasks: Sequence[str], **kwargs: Any) -> list[dict]:
    """Load a stage's exported HF folder (``load_checkpoint``) and evaluate it; keyword arguments
    and rows as ``evaluate_model``."""
    model, tokenizer = load_checkpoint(checkpoint_dir)
    return evaluate_model(model, tokenizer, tasks, **kwargs)
