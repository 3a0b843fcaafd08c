"""``python -m cpt_experiments.evaluate``: lm-eval on stage checkpoints, rows into the ``evals`` table.

Targets are either one exported checkpoint folder or the finished stages of a run (from the
``runs`` table). The held-out suite renders one rolling-perplexity task per corpus role from
that corpus' validation documents; benchmark suites use the offline task YAMLs or hub tasks.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from cpt_experiments import results
from cpt_experiments.data.corpus import CorpusSpec, split_documents
from cpt_experiments.errors import CPTError, config_error
from cpt_experiments.eval.harness import evaluate_checkpoint
from cpt_experiments.eval.heldout import TASK_PREFIX, heldout_task_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """One checkpoint to evaluate and the keys its rows carry."""

    run_id: str
    stage: str
    checkpoint: Path


def select_targets(c: Mapping[str, Any]) -> list[Target]:
    """The checkpoints named by ``checkpoint`` or by ``run_id`` (+ optional ``stages``)."""
    if c.get("checkpoint"):
        path = Path(c["checkpoint"])
        if not (path / "config.json").is_file():
            raise config_error("checkpoint", f"{path} is not an exported stage checkpoint (no config.json)")
        return [Target("adhoc", path.parent.name if path.name == "final" else path.name, path)]
    if not c.get("run_id"):
        raise config_error("run_id", "name a run (run_id=...) or a checkpoint folder (checkpoint=...)")
    runs = results.load(c["paths"]["results_dir"], "runs")
    runs = runs[(runs["run_id"] == c["run_id"]) & runs["status"].isin(["done", "reused"])]
    if runs.empty:
        raise config_error("run_id", f"no finished stages of {c['run_id']!r} in {c['paths']['results_dir']}")
    wanted = list(c.get("stages") or runs["stage"])
    missing = sorted(set(wanted) - set(runs["stage"]))
    if missing:
        raise config_error("stages", f"not finished stages of {c['run_id']}: {', '.join(missing)}")
    by_stage = runs.set_index("stage")
    return [Target(c["run_id"], s, Path(by_stage.loc[s, "checkpoint"])) for s in wanted]


def heldout_tasks(c: Mapping[str, Any], suite: Mapping[str, Any], out_dir: Path) -> list[str]:
    """Render ``cpt_heldout_<role>`` tasks from each role's validation documents (first ``limit``)."""
    roles = [t.removeprefix(TASK_PREFIX) for t in suite["tasks"]]
    unknown = [r for r in roles if r not in c["corpora"]]
    if unknown:
        raise config_error("eval_suite.tasks", f"held-out task for unknown corpus role {unknown[0]!r}")
    limit = suite.get("limit")
    docs: dict[str, list[str]] = {}
    for role in roles:
        spec = CorpusSpec.from_config(c["corpora"][role], key=f"corpora.{role}")
        texts = []
        for _, text in split_documents(spec, c["paths"]["data_dir"], "validation"):
            texts.append(text)
            if limit is not None and len(texts) >= int(limit):
                break
        docs[role] = texts
    return heldout_task_dir(docs, out_dir)


def evaluate_targets(targets: Sequence[Target], suite: Mapping[str, Any], c: Mapping[str, Any]) -> list[dict]:
    """Evaluate every target with the suite; append and return the rows."""
    suite = dict(suite)
    extra: list[Path] = []
    tasks = list(suite["tasks"])
    if suite.get("heldout"):
        out = Path(c["paths"]["cache_dir"]) / "heldout_tasks"
        tasks = heldout_tasks(c, suite, out)
        extra.append(out)
        suite["limit"] = None  # the limit already chose the documents
    all_rows: list[dict] = []
    for t in targets:
        log.info("evaluating %s/%s (%s) on %s", t.run_id, t.stage, t.checkpoint, ", ".join(tasks))
        rows = evaluate_checkpoint(
            t.checkpoint, tasks, benchmark_dir=c["paths"].get("benchmark_dir"), num_fewshot=suite.get("num_fewshot"),
            limit=suite.get("limit"), batch_size=int(suite.get("batch_size", 8)), device=c.get("device", "cpu"),
            extra_include_dirs=extra, seed=int(c.get("seed", 0)), offline=bool(suite.get("offline", False)),
        )
        rows = [{**r, "run_id": t.run_id, "stage": t.stage, "checkpoint": str(t.checkpoint)} for r in rows]
        if rows:
            results.append(c["paths"]["results_dir"], "evals", rows)
        all_rows.extend(rows)
    return all_rows


def evaluate(cfg: DictConfig) -> list[dict]:
    """Evaluate the selected checkpoints with ``cfg.eval_suite``; returns the rows written."""
    c = OmegaConf.to_container(cfg, resolve=True)
    return evaluate_targets(select_targets(c), c["eval_suite"], c)


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        rows = evaluate(cfg)
    except CPTError as exc:
        log.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    for r in rows:
        print(f"{r['run_id']}/{r['stage']}  {r['task']:<24} {r['metric']:<16} {r['value']:.4f} ± {r['stderr']:.4f}")


if __name__ == "__main__":
    main()
