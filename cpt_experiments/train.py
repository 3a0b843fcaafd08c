"""``python -m cpt_experiments.train``: run one experiment (a stage graph) from the Hydra config.

python -m cpt_experiments.train experiment=quickstart scale=smoke
python -m cpt_experiments.train -m experiment=cpt scale=cpu shift=weak,strong replay=seen replay.ratio=0,0.05,0.25
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from cpt_experiments.errors import CPTError
from cpt_experiments.pipeline.experiment import train

log = logging.getLogger(__name__)

__all__ = ["main", "train"]


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
