"""``python -m cpt_experiments.train``: run one experiment (a stage graph) from the Hydra config.

    python -m cpt_experiments.train experiment=quickstart scale=smoke
    python -m cpt_experiments.train -m experiment=replay_sweep replay.ratio=0,0.05,0.25 shift=weak,strong
"""

from __future__ import annotations

import logging
import sys

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from cpt_experiments.errors import CPTError
from cpt_experiments.experiment import RunSummary, run_experiment

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> RunSummary:
    """Train or reuse every stage of ``cfg.experiment``; returns what was done (testable without Hydra)."""
    summary = run_experiment(cfg)
    for name, s in summary.stages.items():
        losses = ", ".join(f"{d} {m['loss']:.3f}" for d, m in s["final_val"].items())
        log.info("%s [%s] %s: %s", summary.run_id, s["status"], name, losses)
    if cfg.get("evaluation") and cfg.evaluation.get("auto"):
        evaluate_marked_stages(cfg, summary)
    return summary


def evaluate_marked_stages(cfg: DictConfig, summary: RunSummary) -> list[dict]:
    """lm-eval on the stages marked ``evaluate: true``; the held-out suite covers the experiment's roles."""
    from cpt_experiments.evaluate import Target, evaluate_targets
    from cpt_experiments.eval.heldout import heldout_task_name

    c = OmegaConf.to_container(cfg, resolve=True)
    suite = dict(c["evaluation"]["suite"])
    if suite.get("heldout"):
        suite["tasks"] = [heldout_task_name(r) for r in summary.roles]
    targets = [Target(summary.run_id, n, Path(s["checkpoint"])) for n, s in summary.stages.items() if s["evaluate"]]
    return evaluate_targets(targets, suite, c) if targets else []


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        train(cfg)
    except CPTError as exc:
        # One line naming the key or file; no traceback for a user error.
        log.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
