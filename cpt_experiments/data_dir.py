"""The data-directory policy: where ``paths.data_dir`` points when no config sets it.

Kept out of the typed schemas (``config``) because it reads the environment (``CPT_DATA_DIR``) and the
filesystem (``../shared/data``); the schemas stay pure. ``config.resolvers`` registers
``default_data_dir`` as the ``cpt_data_dir`` resolver of ``conf/paths/default.yaml``, and
``bench.data`` calls it directly (bench must not import ``pipeline``, so this is a base module).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

from omegaconf.errors import InterpolationResolutionError

from cpt_experiments.files import SAMPLE_DATA_DIR

SHARED_DATA_DIR = "../shared/data"  # our machines' corpora, relative to the launch directory


_announced: set[str] = set()


def default_data_dir(scale: Optional[str] = None, corpora: Any = None) -> str:
    """``paths.data_dir`` unless set: ``$CPT_DATA_DIR``, else ``../shared/data`` if it exists, else the sample
    that ships with the package (resolver ``cpt_data_dir``, ``conf/paths/default.yaml``).

    The sample holds a few hundred documents per corpus: enough for ``scale=smoke`` only, so another scale
    that reads a local corpus fails here, before any work, with the fix. Logs the choice once per process.
    """
    env = os.environ.get("CPT_DATA_DIR")
    if env:
        chosen, why = env, "from CPT_DATA_DIR"
    elif Path(SHARED_DATA_DIR).is_dir():
        chosen, why = SHARED_DATA_DIR, "CPT_DATA_DIR unset; ../shared/data exists"
    else:
        if scale not in (None, "smoke") and any(map(_reads_data_dir, (corpora or {}).values())):
            # OmegaConf's own error type passes through unwrapped, so typed() reports one `paths.data_dir: ...`
            # line (any other exception gets a "... raised while resolving interpolation" prefix).
            raise InterpolationResolutionError(
                f"scale={scale} needs corpora, but CPT_DATA_DIR is unset, {SHARED_DATA_DIR} does not exist and "
                "the embedded sample serves scale=smoke only: fetch them with `python -m cpt_experiments.data.fetch "
                "--data-dir DIR` and add corpora=fetched paths.data_dir=DIR, or set CPT_DATA_DIR=DIR (or "
                "paths.data_dir=DIR) for a folder with A_en_wikipedia.jsonl, B_en_web_mix.jsonl, C_de_bundestag.jsonl"
            )
        chosen, why = str(SAMPLE_DATA_DIR), "embedded sample for scale=smoke; CPT_DATA_DIR unset, no ../shared/data"
    if chosen not in _announced:
        _announced.add(chosen)
        logging.getLogger(__name__).info("paths.data_dir = %s (%s)", chosen, why)
    return chosen


def _reads_data_dir(corpus: Any) -> bool:
    """A local corpus whose ``path`` is relative and that has no ``data_dir`` of its own reads ``paths.data_dir``."""
    if not hasattr(corpus, "get") or corpus.get("source") != "local" or corpus.get("data_dir"):
        return False
    return not Path(str(corpus.get("path") or "")).expanduser().is_absolute()
