"""Held-out perplexity per domain as lm-eval ``loglikelihood_rolling`` tasks (lm-eval computes their bits per byte).

Downstream accuracies sit at chance for CPU-scale models; the rolling log-likelihood of each
corpus' validation documents still moves with every ablation, and forgetting (domain A) and
adaptation (domain B/C) show up directly. ``heldout_task_dir`` writes each domain's documents
as JSONL plus a task YAML ``cpt_heldout_<domain>`` (structured like lm-eval's stock
``wikitext``) whose ``data_files`` is an absolute path, so the folder works from any cwd::

    names = heldout_task_dir({"en_wikipedia": docs_a, "de_bundestag": docs_c}, out_dir)
    rows = evaluate_model(model, tok, names, extra_include_dirs=[out_dir], offline=True)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from cpt_experiments.atomic import atomic_write_text
from cpt_experiments.errors import config_error

TASK_PREFIX = "cpt_heldout_"
TASK_VERSION = 1.0
HELDOUT_METRICS = ("word_perplexity", "byte_perplexity", "bits_per_byte")
_DOMAIN = re.compile(r"^[A-Za-z0-9_]+$")

_TEMPLATE = """\
# Rendered by cpt_experiments.eval.heldout: rolling log-likelihood of the {domain!r}
# validation documents; words and bytes are counted on the document text.
tag:
  - cpt_heldout
task: {task}
dataset_path: json
dataset_name: null
dataset_kwargs:
  data_files:
    test: {data_file}
output_type: loglikelihood_rolling
test_split: test
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
    aggregation: weighted_perplexity
    higher_is_better: false
  - metric: byte_perplexity
    aggregation: weighted_perplexity
    higher_is_better: false
  - metric: bits_per_byte
    aggregation: bits_per_byte
    higher_is_better: false
metadata:
  version: {version}
"""


def heldout_task_name(domain: str) -> str:
    """The lm-eval task name for ``domain``: ``cpt_heldout_<domain>``."""
    return TASK_PREFIX + domain


def heldout_task_dir(domains: dict[str, list[str]], out_dir: str | os.PathLike) -> list[str]:
    """Write one rolling-perplexity task per domain into ``out_dir``; return the task names.

    ``domains`` maps a domain name (letters, digits, ``_``) to its validation documents
    (non-empty strings). For each domain ``out_dir`` gets ``cpt_heldout_<domain>.jsonl``
    (``{"text": ...}`` per line) and ``cpt_heldout_<domain>.yaml``; files are written
    atomically and everything is validated before anything is written. Pass ``out_dir`` to
    ``evaluate_model(..., extra_include_dirs=[out_dir])``.
    """
    if not domains:
        raise config_error("heldout.domains", "no domains given")
    for domain, docs in domains.items():
        if not _DOMAIN.match(domain):
            raise config_error("heldout.domains", f"domain name {domain!r} must match [A-Za-z0-9_]+")
        if not docs:
            raise config_error(f"heldout.domains.{domain}", "no validation documents")
        bad = next((i for i, d in enumerate(docs) if not isinstance(d, str) or not d.strip()), None)
        if bad is not None:
            raise config_error(f"heldout.domains.{domain}", f"document {bad} is empty or not a string")

    out = Path(out_dir).expanduser().resolve()
    names = []
    for domain, docs in domains.items():
        task = heldout_task_name(domain)
        data_file = out / f"{task}.jsonl"
        atomic_write_text(data_file, "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs))
        yaml_text = _TEMPLATE.format(
            domain=domain, task=task, data_file=json.dumps(str(data_file)), version=TASK_VERSION
        )
        atomic_write_text(out / f"{task}.yaml", yaml_text)
        names.append(task)
    return names
