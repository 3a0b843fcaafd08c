"""``python -m cpt_experiments.evaluate``: lm-eval on stage checkpoints, rows into the ``evals`` table.

python -m cpt_experiments.evaluate run_id=quickstart-s0-a78239b eval_suite=cpu
python -m cpt_experiments.evaluate run_id=quickstart-s0-a78239b eval_suite=offline eval_suite.limit=50
python -m cpt_experiments.evaluate checkpoint=outputs/stages/<hash>/final eval_suite=heldout

A run's held-out tasks read the corpora of its config snapshot (``<results_dir>/configs/<config_hash>.yaml``).
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from cpt_experiments.config import yaml_problem
from cpt_experiments.errors import CPTError
from cpt_experiments.files import CONF_DIR
from cpt_experiments.pipeline.evaluation import evaluate
from cpt_experiments.pipeline.failures import log_to_file, one_line

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        rows = evaluate(cfg)
    except Exception as exc:  # e.g. a corrupt weights file: one line here, the traceback in the job log
        reason = one_line(exc)
        log_to_file(reason, exc)
        print(f"error: {reason}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, CPTError) else 1)
    # The suite's own tasks; members of a task family (BLiMP's 67 paradigms) are in the evals table.
    top = set(cfg.eval_suite.tasks)
    for r in rows:
        if r["task"] in top:
            print(f"{r['run_id']}/{r['stage']}  {r['task']:<24} {r['metric']:<16} {r['value']:.4f} ± {r['stderr']:.4f}")
    print(f"{len(rows)} rows ({len({r['task'] for r in rows})} tasks and groups) in {cfg.paths.results_dir}/evals.csv")


def cli() -> None:
    """The command (``python -m`` and the console script): a broken preset is one line, not Hydra's YAML
    traceback, then Hydra's ``main``."""
    if problem := yaml_problem():
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
