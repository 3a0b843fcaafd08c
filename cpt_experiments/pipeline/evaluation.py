"""Evaluate stage checkpoints with lm-eval and append rows to the ``evals`` table (shared by both entry points).

Targets are either one exported checkpoint folder or the finished stages of a run (from the
``runs`` table). A suite's held-out tasks (``cpt_heldout_<role>``) are rendered from each role's
validation documents; its other tasks are offline task YAMLs or hub tasks. The corpora behind a
role are the run's own: ``evaluate run_id=...`` reads them from the run's config snapshot
(``<results_dir>/configs/<config_hash>.yaml``), never from the current defaults, so a run whose
``de_new`` was swapped on the command line is scored on the corpus it was trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from cpt_experiments.config import EvalSuiteConfig, EvaluateRoot, TrainRoot, typed
from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.splits import split_documents
from cpt_experiments.errors import DataError, config_error
from cpt_experiments.eval.checkpoint import load_checkpoint
from cpt_experiments.eval.harness import evaluate_model
from cpt_experiments.eval.heldout import TASK_PREFIX, heldout_task_name, render_heldout_tasks
from cpt_experiments.eval.task_resolution import task_manager_for
from cpt_experiments.hashing import content_hash
from cpt_experiments.pipeline import records
from cpt_experiments.results import store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """One checkpoint to evaluate, the keys its rows carry and (for a run's stage) the run's corpora."""

    run_id: str
    stage: str
    checkpoint: Path
    corpora: Mapping[str, Any] | None = None  # role -> corpus config; None: the setting's


def snapshot_path(results_dir: str | Path, config_hash: str) -> Path:
    """Where a run's resolved config lives (written by ``pipeline.records.write_config_snapshot``)."""
    return Path(results_dir) / "configs" / f"{config_hash}.yaml"


def run_corpora(results_dir: str | Path, run_id: str, config_hash: Any) -> dict[str, Any]:
    """The corpora (role -> corpus config) a run was trained with, from its config snapshot."""
    fix = (
        "re-run the run's train command to write it (finished stages are reused), or evaluate a stage by "
        "checkpoint=<its final folder> with the corpora it was trained on"
    )
    if not isinstance(config_hash, str) or not config_hash:
        raise config_error(
            "run_id", f"the runs rows of {run_id} carry no config_hash, so its corpora are unknown; {fix}"
        )
    path = snapshot_path(results_dir, config_hash)
    if not path.is_file():
        raise config_error("run_id", f"{path} (the config snapshot of {run_id}) not found; {fix}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: unreadable config snapshot ({type(exc).__name__})") from None
    corpora = doc.get("config", {}).get("corpora") if isinstance(doc, dict) else None
    if not isinstance(corpora, dict) or not corpora:
        raise DataError(f"{path}: config snapshot without config.corpora")
    return corpora


def select_targets(c: EvaluateRoot, *, with_corpora: bool = False) -> list[Target]:
    """The checkpoints named by ``checkpoint`` or by ``run_id`` (+ optional ``stages``).

    With ``with_corpora`` a run's targets carry the corpora of the run's config snapshot.
    """
    if c.checkpoint and c.run_id:
        raise config_error(
            "run_id",
            f"{c.run_id!r} would be ignored: checkpoint= evaluates one folder (rows get run_id 'adhoc'); "
            "give checkpoint= or run_id=, not both",
        )
    if c.checkpoint:
        path = Path(c.checkpoint)
        if not (path / "config.json").is_file():
            raise config_error("checkpoint", f"{path} is not an exported stage checkpoint (no config.json)")
        return [Target("adhoc", path.parent.name if path.name == "final" else path.name, path)]
    if not c.run_id:
        raise config_error("run_id", "name a run (run_id=...) or a checkpoint folder (checkpoint=...)")
    runs = store.load(c.paths.results_dir, "runs")
    runs = runs[(runs["run_id"] == c.run_id) & runs["status"].isin(["done", "reused"])]
    if runs.empty:
        raise config_error("run_id", f"no finished stages of {c.run_id!r} in {c.paths.results_dir}")
    wanted = list(c.stages or runs["stage"])
    missing = sorted(set(wanted) - set(runs["stage"]))
    if missing:
        raise config_error("stages", f"not finished stages of {c.run_id}: {', '.join(missing)}")
    by_stage = runs.drop_duplicates("stage", keep="last").set_index("stage")
    targets = []
    for s in wanted:
        row = by_stage.loc[s]
        corpora = run_corpora(c.paths.results_dir, c.run_id, row.get("config_hash")) if with_corpora else None
        targets.append(Target(c.run_id, s, records.checkpoint_path(row["checkpoint"], c.paths.output_dir), corpora))
    return targets


@dataclass(frozen=True)
class EvalSetting:
    """Where an evaluation reads and writes, and which corpora its held-out tasks come from by default."""

    results_dir: str
    cache_dir: str
    data_dir: str
    benchmark_dir: str
    corpora: Mapping[str, Any]
    seed: int = 0
    device: str = "cpu"
    output_dir: str | None = None  # checkpoint paths in the evals table are relative to it (None: as given)

    @classmethod
    def of(cls, root: EvaluateRoot | TrainRoot, device: str = "cpu") -> EvalSetting:
        """The setting of a typed ``evaluate`` or ``train`` root (its paths, corpora and seed)."""
        p = root.paths
        return cls(
            p.results_dir, p.cache_dir, p.data_dir, p.benchmark_dir, root.corpora, root.seed, device, p.output_dir
        )


def heldout_roles(suite: EvalSuiteConfig) -> list[str]:
    """The corpus roles of the suite's held-out tasks (none unless ``heldout``)."""
    return [t.removeprefix(TASK_PREFIX) for t in suite.tasks if suite.heldout and t.startswith(TASK_PREFIX)]


def heldout_tasks(
    data_dir: str, corpora: Mapping[str, Any], roles: Sequence[str], n_docs: int | None, cache_dir: str
) -> tuple[Path, list[str]]:
    """Render ``cpt_heldout_<role>`` tasks from each role's first ``n_docs`` validation documents.

    Returns (task folder, task names). The folder is named by a hash of the corpus configs, the
    document cap and the data folder, so runs with different corpora never share (or overwrite)
    one, even when two evaluations run at once; lm-eval loads code from it, so it is owner-only and
    verified before every use (``eval.task_dir``).
    """
    unknown = [r for r in roles if r not in corpora]
    if unknown:
        raise config_error("eval_suite.tasks", f"held-out task for unknown corpus role {unknown[0]!r}")
    specs = {r: CorpusSpec.from_config(corpora[r], key=f"corpora.{r}") for r in roles}
    # A cache folder name (16 hex digits keep paths short), recorded nowhere and part of no stage hash. Since
    # issue 21 it hashes the specs (defaults filled, whether the corpora came typed or as a snapshot's mappings) in
    # the canonical layout, so each folder was rendered once more.
    material = [data_dir, n_docs, {r: spec.to_dict() for r, spec in specs.items()}]
    out = Path(cache_dir) / "heldout_tasks" / content_hash(material, 16)
    docs: dict[str, list[str]] = {}
    for role, spec in specs.items():
        texts = []
        for _, text in split_documents(spec, data_dir, "validation"):
            texts.append(text)
            if n_docs is not None and len(texts) >= n_docs:
                break
        docs[role] = texts
    return out, render_heldout_tasks(docs, out)


def _limit(value: float | None) -> int | float | None:
    """lm-eval's limit: a count when whole (200.0 -> 200), a fraction of each task when below 1."""
    return int(value) if value is not None and value >= 1 and float(value).is_integer() else value


def benchmark_batches(suite: EvalSuiteConfig, tasks: Sequence[str]) -> list[tuple[int | float | None, list[str]]]:
    """The benchmark tasks grouped by their lm-eval limit (``task_limits``, else ``limit``), in suite order."""
    groups: dict[int | float | None, list[str]] = {}
    for task in tasks:
        groups.setdefault(_limit(suite.task_limits.get(task, suite.limit)), []).append(task)
    return list(groups.items())


def evaluate_targets(targets: Sequence[Target], suite: EvalSuiteConfig, setting: EvalSetting) -> list[dict]:
    """Evaluate every target with the suite; append and return the rows.

    Held-out tasks and benchmark tasks run as separate lm-eval calls on the same loaded model,
    because their limits differ: the held-out documents are chosen when the tasks are rendered
    (``heldout_limit``, else ``limit``), the benchmark items by lm-eval's ``limit`` (one call per
    distinct limit when ``task_limits`` gives some tasks their own).
    """
    roles = heldout_roles(suite)
    benchmarks = [t for t in suite.tasks if not (suite.heldout and t.startswith(TASK_PREFIX))]
    n_docs = suite.heldout_limit if suite.heldout_limit is not None else suite.limit
    n_docs = int(n_docs) if n_docs is not None else None
    common = dict(
        num_fewshot=suite.num_fewshot,
        batch_size=suite.batch_size,
        batch_tokens=suite.batch_tokens,
        device=setting.device,
        seed=setting.seed,
        offline=suite.offline,
        cache_dir=setting.cache_dir,
    )
    all_rows: list[dict] = []
    for t in targets:
        log.info("evaluating %s/%s (%s) on %s", t.run_id, t.stage, t.checkpoint, ", ".join(suite.tasks))
        model, tokenizer = load_checkpoint(t.checkpoint)
        rows: list[dict] = []
        if roles:
            corpora = setting.corpora if t.corpora is None else t.corpora
            out, names = heldout_tasks(setting.data_dir, corpora, roles, n_docs, setting.cache_dir)
            got = evaluate_model(model, tokenizer, names, extra_include_dirs=[out], **common)
            rows += [{**r, "limit": n_docs} for r in got]
        for limit, tasks in benchmark_batches(suite, benchmarks):
            rows += evaluate_model(model, tokenizer, tasks, benchmark_dir=setting.benchmark_dir, limit=limit, **common)
        where = records.output_relative(t.checkpoint, setting.output_dir) if setting.output_dir else str(t.checkpoint)
        rows = [{**r, "run_id": t.run_id, "stage": t.stage, "checkpoint": where} for r in rows]
        if rows:
            store.append(setting.results_dir, "evals", rows)
        all_rows.extend(rows)
    return all_rows


def _report_corpora(targets: Sequence[Target], composed: Mapping[str, Any], roles: Sequence[str]) -> None:
    """Warn where a run's held-out corpus differs from this command's (the run's own is used)."""
    seen: set[tuple[str, str]] = set()
    for t in targets:
        for role in roles:
            run = dict((t.corpora or {}).get(role) or {})
            if not run or (t.run_id, role) in seen or composed.get(role) == run:
                continue
            seen.add((t.run_id, role))
            here = dict(composed.get(role) or {}).get("name")
            log.warning(
                "corpora.%s: run %s was trained on %r, not on this command's %r; its held-out task uses %r",
                *(role, t.run_id, run.get("name"), here, run.get("name")),
            )


def evaluate(cfg: DictConfig | Mapping[str, Any]) -> list[dict]:
    """Evaluate the selected checkpoints with ``cfg.eval_suite``; returns the rows written."""
    c: EvaluateRoot = typed(EvaluateRoot, cfg)[0]
    setting = EvalSetting.of(c, c.device)
    roles = heldout_roles(c.eval_suite)
    targets = select_targets(c, with_corpora=bool(roles))
    _report_corpora(targets, c.corpora, roles)
    return evaluate_targets(targets, c.eval_suite, setting)


def check_auto_suite(c: TrainRoot) -> None:
    """Before any training, with ``evaluation.auto``: the suite's benchmark tasks are known and their files
    exist (held-out tasks need only the corpora, checked with them); one line naming the task or file."""
    suite = c.evaluation.suite
    if not c.evaluation.auto:
        return
    benchmarks = [t for t in suite.tasks if not (suite.heldout and t.startswith(TASK_PREFIX))]
    if benchmarks:
        task_manager_for(benchmarks, c.paths.benchmark_dir, offline=suite.offline, cache_dir=c.paths.cache_dir)


def evaluate_marked_stages(
    cfg: DictConfig, run_id: str, roles: Sequence[str], stages: Mapping[str, Mapping[str, Any]]
) -> list[dict]:
    """lm-eval on the stages marked ``evaluate: true`` after training; the held-out tasks cover ``roles``."""
    c: TrainRoot = typed(TrainRoot, cfg)[0]
    suite = c.evaluation.suite
    if suite.heldout:
        others = [t for t in suite.tasks if not t.startswith(TASK_PREFIX)]
        suite = replace(suite, tasks=[heldout_task_name(r) for r in roles] + others)
    setting = EvalSetting.of(c)
    targets = [Target(run_id, n, Path(s["checkpoint"])) for n, s in stages.items() if s["evaluate"]]
    return evaluate_targets(targets, suite, setting) if targets else []
