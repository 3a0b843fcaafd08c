"""``python -m cpt_experiments.train``: run one experiment (a stage graph) from the Hydra config.

    python -m cpt_experiments.train experiment=quickstart scale=smoke
    python -m cpt_experiments.train -m experiment=replay_sweep replay.ratio=0,0.05,0.25 shift=weak,strong
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from cpt_experiments.errors import CPTError
from cpt_experiments.experiment import RunSummary, run_experiment

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> RunSummary:
    """Train or reuse every stage of ``cfg.experiment``; returns what was done (testable without Hydra)."""
    summary = run_experiment(cfg)
    for name, s in summary.stages.items():
        losses = ", ".join(f"{d} {m['loss']:.3f}" for d, m in s["final_val"].items())
        log.info("%s [%s] %s: %s", summary.run_id, s["status"], name, losses)
    return summary


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
