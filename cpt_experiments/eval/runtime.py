"""How lm-eval runs in our process: compiled prompt templates are reused, and its output is quiet.

* lm-eval renders every prompt field (``doc_to_text``, ``doc_to_choice``, ...) with
  ``Environment.from_string``, which compiles the Jinja template again for every document and
  every call: on 6,700 BLiMP pairs that was most of the run. Inside ``lm_eval_runtime()`` a
  template string is compiled once (a template is a pure function of its text; rendering is
  unchanged).
* An offline suite over ~70 tasks printed thousands of lines (a "Building contexts" bar and INFO
  lines per task, a progress bar per rolling batch). With ``quiet`` lm-eval's loggers show errors
  only, its and ``datasets``' progress bars are off, its ``print`` calls go nowhere and its
  ``git describe`` call (which prints to the terminal outside a checkout) is skipped; the harness
  logs one line per requested task instead. Whoever wants lm-eval's own output sets
  ``LMEVAL_LOG_LEVEL`` (lm-eval's variable) or turns its logger to DEBUG (``hydra.verbose=lm_eval``).

Everything is restored when the block ends.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import logging
import os
from collections.abc import Iterator
from typing import Any

#: lm-eval modules that draw tqdm bars during an evaluation.
_TQDM_MODULES = ("lm_eval.api.task", "lm_eval.api.model", "lm_eval.api.metrics", "lm_eval.models.huggingface")


def wants_lm_eval_output() -> bool:
    """True if the user asked for lm-eval's own logging (``LMEVAL_LOG_LEVEL`` or a DEBUG logger)."""
    return bool(os.environ.get("LMEVAL_LOG_LEVEL")) or logging.getLogger("lm_eval").isEnabledFor(logging.DEBUG)


def _silent_tqdm(tqdm: Any) -> Any:
    def silent(*args: Any, **kwargs: Any) -> Any:
        kwargs["disable"] = True
        return tqdm(*args, **kwargs)

    return silent


@contextlib.contextmanager
def _cached_templates() -> Iterator[None]:
    from lm_eval import utils

    if not (hasattr(utils, "apply_template") and hasattr(utils, "env")):  # another lm-eval layout: no cache
        yield
        return
    original = utils.apply_template
    compiled = functools.lru_cache(maxsize=1024)(utils.env.from_string)

    def apply_template(template: str, doc: dict) -> str:
        return compiled(template).render(**doc)

    utils.apply_template = apply_template
    try:
        yield
    finally:
        utils.apply_template = original


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import datasets

    logger = logging.getLogger("lm_eval")
    level = logger.level
    bars_were_on = datasets.utils.logging.is_progress_bar_enabled()
    patched: list[tuple[Any, str, Any]] = []  # (module, attribute, original)
    for name in _TQDM_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "tqdm"):
            patched.append((module, "tqdm", module.tqdm))
            module.tqdm = _silent_tqdm(module.tqdm)
    # lm-eval asks `git describe` for its results' git_hash (unused: runs record their own commit),
    # which prints "fatal: not a git repository" to the terminal outside a checkout.
    evaluator = importlib.import_module("lm_eval.evaluator")
    if hasattr(evaluator, "get_git_commit_hash"):
        patched.append((evaluator, "get_git_commit_hash", evaluator.get_git_commit_hash))
        evaluator.get_git_commit_hash = lambda: None
    logger.setLevel(logging.ERROR)
    datasets.utils.logging.disable_progress_bar()
    try:
        # lm-eval prints a few messages (batch-size detection) instead of logging them.
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
        for module, attribute, original in patched:
            setattr(module, attribute, original)
        if bars_were_on:
            datasets.utils.logging.enable_progress_bar()


@contextlib.contextmanager
def lm_eval_runtime(quiet: bool = True, cache_templates: bool = True) -> Iterator[None]:
    """Within the block lm-eval reuses compiled templates (unless ``cache_templates`` is off, as in
    lm-eval itself) and, if ``quiet``, is silent (see above)."""
    with contextlib.ExitStack() as stack:
        if cache_templates:
            stack.enter_context(_cached_templates())
        if quiet and not wants_lm_eval_output():
            stack.enter_context(_quiet())
        yield
