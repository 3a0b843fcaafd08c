"""Evaluate stage checkpoints with lm-eval and append rows to the ``evals`` table (shared by both entry points).

Targets are either one exported checkpoint folder or the finished stages of a run (from the
``runs`` table). The held-out suite renders one rolling-perplexity task per corpus role from
that corpus' validation documents; benchmark suites use the offline task YAMLs or hub tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cpt_experiments.config import EvalSuiteConfig, EvaluateRoot, TrainRoot, typed
from cpt_experiments.data.corpus import CorpusSpec, split_documents
from cpt_experiments.errors import config_error
from cpt_experiments.eval.harness import evaluate_checkpoint
from cpt_experiments.eval.heldout import TASK_PREFIX, heldout_task_dir, heldout_task_name
from cpt_experiments.results import store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """One checkpoint to evaluate and the keys its rows carry."""

    run_id: str
    stage: str
    checkpoint: Path


def select_targets(c: EvaluateRoot) -> list[Target]:
    """The checkpoints named by ``checkpoint`` or by ``run_id`` (+ optional ``stages``)."""
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
    by_stage = runs.set_index("stage")
    return [Target(c.run_id, s, Path(by_stage.loc[s, "checkpoint"])) for s in wanted]


@dataclass(frozen=True)
class EvalSetting:
    """Where an evaluation reads and writes, and which corpora its held-out tasks come from."""

    results_dir: str
    cache_dir: str
    data_dir: str
    benchmark_dir: str
    corpora: Mapping[str, Any]
    seed: int = 0
    device: str = "cpu"


def heldout_tasks(setting: EvalSetting, suite: EvalSuiteConfig, out_dir: Path) -> list[str]:
    """Render ``cpt_heldout_<role>`` tasks from each role's validation documents (first ``limit``)."""
    roles = [t.removeprefix(TASK_PREFIX) for t in suite.tasks]
    unknown = [r for r in roles if r not in setting.corpora]
    if unknown:
        raise config_error("eval_suite.tasks", f"held-out task for unknown corpus role {unknown[0]!r}")
    docs: dict[str, list[str]] = {}
    for role in roles:
        spec = CorpusSpec.from_config(setting.corpora[role], key=f"corpora.{role}")
        texts = []
        for _, text in split_documents(spec, setting.data_dir, "validation"):
            texts.append(text)
            if suite.limit is not None and len(texts) >= int(suite.limit):
                break
        docs[role] = texts
    return heldout_task_dir(docs, out_dir)


def _limit(value: float | None) -> int | float | None:
    """lm-eval's limit: a count when whole (200.0 -> 200), a fraction of each task when below 1."""
    return int(value) if value is not None and value >= 1 and float(value).is_integer() else value


def evaluate_targets(targets: Sequence[Target], suite: EvalSuiteConfig, setting: EvalSetting) -> list[dict]:
    """Evaluate every target with the suite; append and return the rows."""
    extra: list[Path] = []
    tasks, limit = list(suite.tasks), _limit(suite.limit)
    if suite.heldout:
        out = Path(setting.cache_dir) / "heldout_tasks"
        tasks = heldout_tasks(setting, suite, out)
        extra.append(out)
        limit = None  # the limit already chose the documents
    all_rows: list[dict] = []
    for t in targets:
        log.info("evaluating %s/%s (%s) on %s", t.run_id, t.stage, t.checkpoint, ", ".join(tasks))
        rows = evaluate_checkpoint(
            t.checkpoint,
            tasks,
            benchmark_dir=setting.benchmark_dir,
            num_fewshot=suite.num_fewshot,
            limit=limit,
            batch_size=suite.batch_size,
            device=setting.device,
            extra_include_dirs=extra,
            seed=setting.seed,
            offline=suite.offline,
        )
        rows = [{**r, "run_id": t.run_id, "stage": t.stage, "checkpoint": str(t.checkpoint)} for r in rows]
        if rows:
            store.append(setting.results_dir, "evals", rows)
        all_rows.extend(rows)
    return all_rows


def evaluate(cfg: DictConfig | Mapping[str, Any]) -> list[dict]:
    """Evaluate the selected checkpoints with ``cfg.eval_suite``; returns the rows written."""
    c: EvaluateRoot = typed(EvaluateRoot, cfg)[0]
    setting = EvalSetting(
        c.paths.results_dir, c.paths.cache_dir, c.paths.data_dir, c.paths.benchmark_dir, c.corpora, c.seed, c.device
    )
    return evaluate_targets(select_targets(c), c.eval_suite, setting)


def evaluate_marked_stages(
    cfg: DictConfig, run_id: str, roles: Sequence[str], stages: Mapping[str, Mapping[str, Any]]
) -> list[dict]:
    """lm-eval on the stages marked ``evaluate: true`` after training; the held-out suite covers ``roles``."""
    c: TrainRoot = typed(TrainRoot, cfg)[0]
    suite = c.evaluation.suite
    if suite.heldout:
        suite = replace(suite, tasks=[heldout_task_name(r) for r in roles])
    setting = EvalSetting(
        c.paths.results_dir, c.paths.cache_dir, c.paths.data_dir, c.paths.benchmark_dir, c.corpora, c.seed
    )
    targets = [Target(run_id, n, Path(s["checkpoint"])) for n, s in stages.items() if s["evaluate"]]
    return evaluate_targets(targets, suite, setting) if targets else []
