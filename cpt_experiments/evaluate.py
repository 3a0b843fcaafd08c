"""``python -m cpt_experiments.evaluate``: lm-eval on stage checkpoints, rows into the ``evals`` table.

python -m cpt_experiments.evaluate run_id=quickstart-s0-a78239b eval_suite=offline eval_suite.limit=50
python -m cpt_experiments.evaluate checkpoint=outputs/stages/<hash>/final eval_suite=heldout
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from cpt_experiments.errors import CPTError
from cpt_experiments.pipeline.evaluation import evaluate

log = logging.getLogger(__name__)


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
