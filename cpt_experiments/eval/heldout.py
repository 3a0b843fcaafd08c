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
from cpt_experiments.eval.task_dir import render_task_dir

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


def heldout_task_files(domains: dict[str, list[str]], out_dir: str | os.PathLike) -> dict[str, str]:
    """The files (name -> text) of one rolling-perplexity task per domain, for the folder ``out_dir``.

    ``domains`` maps a domain name (letters, digits, ``_``) to its validation documents (non-empty
    strings); every domain gets ``cpt_heldout_<domain>.jsonl`` (``{"text": ...}`` per line) and
    ``cpt_heldout_<domain>.yaml``, whose ``data_files`` is the JSONL's absolute path in ``out_dir``.
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
    files = {}
    for domain, docs in domains.items():
        task = heldout_task_name(domain)
        files[f"{task}.jsonl"] = "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs)
        data_file = json.dumps(str(out / f"{task}.jsonl"))
        files[f"{task}.yaml"] = _TEMPLATE.format(domain=domain, task=task, data_file=data_file, version=TASK_VERSION)
    return files


def heldout_task_dir(domains: dict[str, list[str]], out_dir: str | os.PathLike) -> list[str]:
    """Write one rolling-perplexity task per domain into ``out_dir``; return the task names.

    Files as ``heldout_task_files``, each written atomically, after every domain is validated; other
    files in ``out_dir`` are left alone. Pass ``out_dir`` to
    ``evaluate_model(..., extra_include_dirs=[out_dir])``. A cache folder that is reused across
    processes goes through ``render_heldout_tasks`` instead (verified before every use).
    """
    out = Path(out_dir).expanduser().resolve()
    for name, text in heldout_task_files(domains, out).items():
        atomic_write_text(out / name, text)
    return [heldout_task_name(d) for d in domains]


def render_heldout_tasks(domains: dict[str, list[str]], dest: str | os.PathLike) -> list[str]:
    """The tasks of ``heldout_task_files`` in the owner-only, manifest-checked folder ``dest``
    (``eval.task_dir.render_task_dir``: exactly these files, or rendered again); returns the task names."""
    dest = Path(dest).expanduser().resolve()
    render_task_dir(dest, heldout_task_files(domains, dest))
    return [heldout_task_name(d) for d in domains]
