"""Which lm-eval tasks a suite names and where lm-eval finds them: the TaskManager ``harness`` evaluates with.

Offline tasks ship as YAML templates in ``eval/tasks/`` whose data files point at the
placeholder ``@CPT_BENCHMARK_DIR@``: lm-eval resolves relative ``data_files`` against the
current working directory, not the YAML's folder, so the templates are rendered with the
absolute benchmark folder into a content-addressed cache dir, which is then given to
``TaskManager(include_path=...)``. Stock hub tasks (``hellaswag``, ``arc_de``, ...) are only
indexed when a requested task is not local, because indexing lm-eval's ~15k stock configs
takes several seconds. A *task family* YAML (``family:``, see ``task_families``) renders into one
task per benchmark file plus groups; groups give aggregate rows (``harness.results_to_rows``).
Every requested task is checked here, and its benchmark files, before a model is loaded.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cpt_experiments.errors import DataError, config_error
from cpt_experiments.eval.task_dir import render_task_dir, task_root
from cpt_experiments.eval.task_families import family_name, parse_family, render_family
from cpt_experiments.hashing import content_hash

TASK_TEMPLATE_DIR = Path(__file__).resolve().parent / "tasks"
PLACEHOLDER = "@CPT_BENCHMARK_DIR@"
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
    # A cache folder name (16 hex digits keep paths short), recorded nowhere and part of no stage hash: the
    # canonical JSON replaced a repr of the items in issue 21, so each folder was rendered once more.
    digest = content_hash(rendered, 16)
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
