"""Run lm-eval in process on our own model and tokenizer objects; return tidy result rows.

Offline tasks ship as YAML templates in ``eval/tasks/`` whose data files point at the
placeholder ``@CPT_BENCHMARK_DIR@``: lm-eval resolves relative ``data_files`` against the
current working directory, not the YAML's folder, so the templates are rendered with the
absolute benchmark folder into a content-addressed cache dir, which is then given to
``TaskManager(include_path=...)``. Stock hub tasks (``hellaswag``, ``arc_de``, ...) are only
indexed when a requested task is not local, because indexing lm-eval's ~15k stock configs
takes several seconds. A *task family* YAML (``family:``, see ``task_families``) renders into one
task per benchmark file plus groups; groups give aggregate rows (``results_to_rows``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cpt_experiments.errors import DataError, config_error
from cpt_experiments.eval.lm import windowed_hflm
from cpt_experiments.eval.runtime import lm_eval_runtime
from cpt_experiments.eval.task_dir import render_task_dir, task_root
from cpt_experiments.eval.task_families import family_name, parse_family, render_family

log = logging.getLogger(__name__)

TASK_TEMPLATE_DIR = Path(__file__).resolve().parent / "tasks"
PLACEHOLDER = "@CPT_BENCHMARK_DIR@"
ROW_KEYS = ("task", "task_version", "num_fewshot", "metric", "value", "stderr", "limit")
_TASK_LINE = re.compile(r"^task:\s*(\S+)\s*$", re.MULTILINE)
_DATA_FILE = re.compile(re.escape(PLACEHOLDER) + r"/([^\"'\s]+)")


def resolve_benchmark_dir(benchmark_dir: str | os.PathLike | None = None) -> Path | None:
    """The offline benchmark folder: the argument, else ``$CPT_BENCHMARK_DIR``, else
    ``$CPT_DATA_DIR/benchmarks``; ``None`` when none is given."""
    if benchmark_dir is not None:
        return Path(benchmark_dir).expanduser().resolve()
    if os.environ.get("CPT_BENCHMARK_DIR"):
        return Path(os.environ["CPT_BENCHMARK_DIR"]).expanduser().resolve()
    if os.environ.get("CPT_DATA_DIR"):
        return (Path(os.environ["CPT_DATA_DIR"]) / "benchmarks").expanduser().resolve()
    return None


def _templates() -> dict[str, str]:
    """File name -> text of every shipped task file (YAML templates and their ``utils.py``)."""
    files = sorted(p for p in TASK_TEMPLATE_DIR.iterdir() if p.suffix in (".yaml", ".py"))
    return {p.name: p.read_text(encoding="utf-8") for p in files}


def local_task_files() -> dict[str, list[str]]:
    """Local task (or task family) name -> benchmark files it reads, relative to the benchmark folder.

    A family's entry is its glob (e.g. ``blimp/*.jsonl``): its member tasks depend on the files present.
    """
    out = {}
    for name, text in _templates().items():
        family = family_name(text) if name.endswith(".yaml") else None
        if family:
            out[family] = [parse_family(text, name).files]
            continue
        match = _TASK_LINE.search(text)
        if match:
            out[match.group(1)] = _DATA_FILE.findall(text)
    return out


def render_offline_tasks(benchmark_dir: str | os.PathLike, cache_root: str | os.PathLike | None = None) -> Path:
    """Render the shipped task templates with ``benchmark_dir`` substituted; return the folder.

    The folder ``<cache_root>/<digest>`` (``cache_root`` defaults to ``<$CPT_CACHE_DIR>/lm_eval_tasks``,
    else a private temporary folder of this process; never a shared ``/tmp`` path) is named by a hash
    of the rendered files. lm-eval imports its ``utils.py``, so it is owner-only and checked against
    its manifest before every reuse, and rendered again (with a warning) when anything differs
    (``eval.task_dir``).
    """
    bench = Path(benchmark_dir).expanduser().resolve()
    if not bench.is_dir():
        raise config_error("paths.benchmark_dir", f"not a directory: {bench}")
    # JSON-escaping keeps a path with quotes or backslashes valid inside the YAML "..." strings.
    quoted = _yaml_quoted(str(bench))
    templates = _templates()
    families = {name: text for name, text in templates.items() if name.endswith(".yaml") and family_name(text)}
    rendered = {name: text.replace(PLACEHOLDER, quoted) for name, text in templates.items() if name not in families}
    for name, text in families.items():
        for member, member_text in render_family(parse_family(text, name), bench).items():
            if member in rendered:
                raise DataError(f"{TASK_TEMPLATE_DIR / name}: renders {member}, which another task file holds")
            rendered[member] = member_text
    digest = hashlib.sha256(repr(sorted(rendered.items())).encode("utf-8")).hexdigest()[:16]
    root = Path(cache_root) if cache_root is not None else task_root(None, "lm_eval_tasks")
    return render_task_dir(root / digest, rendered)


def _yaml_quoted(text: str) -> str:
    """``text`` escaped for use inside a double-quoted YAML scalar."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


@functools.lru_cache(maxsize=8)
def _task_manager(include_dirs: tuple[str, ...], include_defaults: bool) -> Any:
    # One TaskManager per (dirs, defaults): indexing is the slow part of lm-eval start-up.
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(include_dirs) or None, include_defaults=include_defaults)


def get_task_manager(tasks: Sequence[str], include_dirs: Sequence[str | os.PathLike], *, offline: bool) -> Any:
    """A TaskManager that knows every name in ``tasks``; stock tasks are indexed only if needed.

    Raises ConfigError naming the first unknown task.
    """
    dirs = tuple(str(Path(d).resolve()) for d in include_dirs)
    manager = _task_manager(dirs, False)
    missing = [t for t in tasks if t not in manager.all_tasks]
    if missing and not offline:
        manager = _task_manager(dirs, True)
        missing = [t for t in tasks if t not in manager.all_tasks]
    if missing:
        where = "local tasks" if offline else "local or stock lm-eval tasks"
        local = ", ".join(sorted(local_task_files()))
        problem = f"unknown lm-eval task {missing[0]!r} (not among the {where}; local: {local})"
        raise config_error("eval_suite.tasks", problem)
    return manager


#: How to get the files, named by every missing-benchmark error (as the corpus errors name theirs).
BENCHMARK_FIX = (
    "fetch them with `cpt-fetch --data-dir DIR --only benchmarks` (= python -m cpt_experiments.data.fetch) and "
    "set paths.benchmark_dir=DIR/benchmarks (or CPT_BENCHMARK_DIR)"
)


def _check_benchmark_files(tasks: Iterable[str], benchmark_dir: Path | None) -> None:
    needs = local_task_files()
    for task in tasks:
        for name in needs.get(task, []):
            if benchmark_dir is None:
                raise config_error("paths.benchmark_dir", f"task {task!r} needs local benchmark files: {BENCHMARK_FIX}")
            if any(c in name for c in "*?["):
                if not any(p.is_file() for p in benchmark_dir.glob(name)):
                    raise DataError(f"{benchmark_dir / name}: no benchmark files for task {task!r}; {BENCHMARK_FIX}")
            elif not (benchmark_dir / name).is_file():
                raise DataError(f"{benchmark_dir / name}: benchmark file for task {task!r} not found; {BENCHMARK_FIX}")


def _names_local_task(tasks: Iterable[str]) -> bool:
    """True if a task is a shipped local task or family, or looks like a family's member or group."""
    local = local_task_files()
    return any(t in local or any(t.startswith(f"{name}_") for name in local) for t in tasks)


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


def task_manager_for(
    tasks: Sequence[str],
    benchmark_dir: str | os.PathLike | None = None,
    extra_include_dirs: Sequence[str | os.PathLike] = (),
    *,
    offline: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> Any:
    """The TaskManager ``evaluate_model`` uses (arguments as there): every task known and its benchmark
    files present, else one ConfigError/DataError line. Also the plan-time check of ``evaluation.auto``."""
    if not tasks:
        raise config_error("eval_suite.tasks", "no tasks given")
    bench = resolve_benchmark_dir(benchmark_dir)
    _check_benchmark_files(tasks, bench)
    # An explicit benchmark_dir must exist; one only implied by the environment is used only
    # when a local benchmark task (or a member or group of a local family) is requested.
    render = bench is not None and (benchmark_dir is not None or (bench.is_dir() and _names_local_task(tasks)))
    include = [str(render_offline_tasks(bench, task_root(cache_dir, "lm_eval_tasks")))] if render else []
    include += [str(Path(d).resolve()) for d in extra_include_dirs]
    return get_task_manager(tasks, include, offline=offline)


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
    of this length. ``limit`` caps the
    documents per task (a float < 1 is a fraction; the first documents of each task, so the
    subset is deterministic). ``offline=True`` never indexes stock tasks. The offline task folder is
    rendered under ``<cache_dir>/lm_eval_tasks`` (``render_offline_tasks``).
    ``batch_tokens`` (padded tokens per forward pass) sizes each batch by its sequences' length,
    with ``batch_size`` as the cap on sequences; ``None`` keeps ``batch_size`` sequences per batch.
    ``bootstrap_iters`` is used for the stderr of non-mean metrics (perplexity); 0 skips it.
    ``quiet`` silences lm-eval (``eval.runtime``) and logs one line per requested task instead;
    ``cache_templates=False`` lets lm-eval compile its prompt templates per document, as it does
    by itself (only to measure what the cache saves).
    The model is moved to ``device`` and left there, in the train/eval mode it came in.
    Rows: see ``results_to_rows``.
    """
    import lm_eval

    manager = task_manager_for(tasks, benchmark_dir, extra_include_dirs, offline=offline, cache_dir=cache_dir)

    if max_length is None:
        max_length = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
    was_training = model.training
    model.to(device)
    try:
        with lm_eval_runtime(quiet, cache_templates):
            lm = windowed_hflm()(
                pretrained=model,
                tokenizer=tokenizer,
                batch_size=batch_size,
                batch_tokens=batch_tokens,
                max_length=max_length,
            )
            results = lm_eval.simple_evaluate(
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
    finally:
        model.train(was_training)
    if results is None:  # only on non-zero ranks in distributed runs
        return []
    rows = results_to_rows(results, limit)
    if quiet:
        log_summary(rows, tasks)
    return rows


def load_checkpoint(checkpoint_dir: str | os.PathLike) -> tuple[Any, Any]:
    """(model, tokenizer) of a stage's exported HF folder (``save_pretrained`` model + tokenizer in
    one folder), from local files only, in float32, in eval mode; DataError if it is not one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = Path(checkpoint_dir)
    if not (path / "config.json").is_file():
        raise DataError(f"{path}: not an exported checkpoint (no config.json)")
    check_weights(path)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Loading weights" bar per checkpoint otherwise
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return model.eval(), tokenizer


def check_weights(folder: Path) -> None:
    """The folder's weights are complete safetensors files; DataError naming the file otherwise.

    A pickled ``pytorch_model.bin`` is refused (unpickling runs code); a ``.safetensors`` file must hold
    its whole header and every tensor it declares (a copy cut short fails here, not inside the loader).
    """
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in folder.glob("*.bin"))
        what = (
            f"holds {pickled[0]} (a pickle, not loaded: convert it to safetensors)"
            if pickled
            else "has no *.safetensors"
        )
        raise DataError(f"{folder}: {what}")
    for f in files:
        try:
            with open(f, "rb") as fh:
                head = fh.read(8)
                n = int.from_bytes(head, "little") if len(head) == 8 else -1
                raw = fh.read(n) if 0 < n < 100_000_000 else b""
            size = f.stat().st_size
        except OSError as exc:
            raise DataError(f"{f}: unreadable safetensors file ({exc.strerror or exc})") from None
        if 0 < n < 100_000_000 and len(raw) < n:
            raise DataError(f"{f}: truncated: {size} bytes, its header alone declares {8 + n}; re-export or restore it")
        try:
            header = json.loads(raw) if raw else None
        except ValueError:
            header = None
        if not isinstance(header, dict):
            raise DataError(f"{f}: not a complete safetensors file (header missing or cut)")
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        if size < 8 + n + end:
            raise DataError(f"{f}: truncated: {size} bytes, its header declares {8 + n + end}; re-export or restore it")


def evaluate_checkpoint(checkpoint_dir: str | os.PathLike, tasks: Sequence[str], **kwargs: Any) -> list[dict]:
    """Load a stage's exported HF folder (``load_checkpoint``) and evaluate it; keyword arguments
    and rows as ``evaluate_model``."""
    model, tokenizer = load_checkpoint(checkpoint_dir)
    return evaluate_model(model, tokenizer, tasks, **kwargs)
