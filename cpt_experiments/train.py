"""``python -m cpt_experiments.train``: run one experiment (a stage graph) from the Hydra config.

python -m cpt_experiments.train experiment=quickstart scale=smoke
python -m cpt_experiments.train -m experiment=cpt scale=cpu shift=weak,strong replay=seen replay.ratio=0,0.05,0.25
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from cpt_experiments.config import yaml_problem
from cpt_experiments.errors import CPTError
from cpt_experiments.files import CONF_DIR
from cpt_experiments.pipeline.experiment import train
from cpt_experiments.pipeline.failures import handle_failure, log_to_file

log = logging.getLogger(__name__)

__all__ = ["cli", "main", "train"]


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        train(cfg)
    except Exception as exc:  # one member's failure must not end a sweep (KeyboardInterrupt does)
        reason = handle_failure(cfg, exc)
        log_to_file(reason, exc)
        print(f"error: {reason}", file=sys.stderr)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(2 if isinstance(exc, CPTError) else 1)


def cli() -> None:
    """The command (``python -m`` and the console script): a broken preset is one line, not Hydra's YAML
    traceback, then Hydra's ``main``."""
    if problem := yaml_problem():
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
