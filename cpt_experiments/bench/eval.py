"""Evaluation speed and noise: an eval suite on one checkpoint, lm-eval's default way vs ours, side by side.

``python -m cpt_experiments.bench eval [--checkpoint DIR] [--suite cpu] [--batch-tokens 4096,...] [--rounds 1]``

Both settings run the same tasks with the same limits on the same model in one process, as
``python -m cpt_experiments.evaluate`` does (held-out tasks and benchmark tasks as two lm-eval calls):

* ``lm-eval default``: stock HFLM batching of 8 sequences, lm-eval's own output, Jinja prompt
  templates compiled per document (the settings before the CPU suite existed);
* ``suite``: the suite file's ``batch_size`` / ``batch_tokens`` (token-budget batches scored in a
  few tensor operations), cached templates, quiet output. ``--batch-tokens`` adds one row per value.

Per setting: wall seconds of the held-out part and of the benchmark part, seconds inside the model's
forward pass and the (padded) tokens it read, lines printed (stdout and stderr, as a log file gets
them) and the largest score difference from the first setting. The
first row is the baseline; ``x faster`` is its time over the row's. Without ``--checkpoint`` a
random-weight ``neox_d128`` with a freshly trained BPE (vocab 4096) stands in: timings need no
trained model (scores then sit at chance). An untimed warm-up pass first fills the ``datasets``
cache, so neither setting pays for converting the JSON files.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cpt_experiments.errors import CPTError
from cpt_experiments.files import CONF_DIR

DEFAULT = {"batch_size": 8, "batch_tokens": None, "quiet": False, "cache_templates": False}


def _default_data_dir() -> Path:
    return Path(os.environ.get("CPT_DATA_DIR", "../shared/data"))


def _role_corpora() -> dict[str, dict]:
    """Role -> corpus config of ``conf/corpora/local.yaml`` (its defaults list: ``/corpus@<role>: <name>``)."""
    from omegaconf import OmegaConf

    out = {}
    for entry in OmegaConf.load(CONF_DIR / "corpora" / "local.yaml").defaults:
        ((key, name),) = dict(entry).items()
        role = key.split("@", 1)[1]
        out[role] = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "corpus" / f"{name}.yaml"))
    return out


def _random_checkpoint(data_dir: Path, out: Path) -> Path:
    """A random-weight neox_d128 and a BPE (vocab 4096) trained on the English corpus, saved as one folder."""
    import torch
    from omegaconf import OmegaConf

    from cpt_experiments.data.corpus import CorpusSpec
    from cpt_experiments.data.tokenizer import get_tokenizer
    from cpt_experiments.training.model import build_model, load_model_cfg

    spec = CorpusSpec.from_config(OmegaConf.load(CONF_DIR / "corpus" / "wiki_en.yaml"), key="corpus.wiki_en")
    tok_cfg = {"kind": "bpe", "vocab_size": 4096, "min_frequency": 2, "train_max_chars": 4_000_000}
    tokenizer = get_tokenizer(tok_cfg, spec, data_dir, out / "cache")
    torch.manual_seed(0)
    model = build_model(load_model_cfg("neox_d128"), len(tokenizer))
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    return out / "model"


@contextlib.contextmanager
def _captured_lines() -> Iterator[list[int]]:
    """Count the lines written to stdout and stderr (file descriptors 1 and 2, subprocesses included)."""
    count = [0]
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield count
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            count[0] = sink.read().count(b"\n")


def _heldout(suite: dict, data_dir: Path, out: Path) -> tuple[Path, list[str]]:
    """Render the suite's held-out tasks from the default corpora (first ``heldout_limit`` documents)."""
    from cpt_experiments.data.corpus import CorpusSpec
    from cpt_experiments.data.splits import split_documents
    from cpt_experiments.eval.heldout import TASK_PREFIX, render_heldout_tasks

    roles = [t.removeprefix(TASK_PREFIX) for t in suite["tasks"] if suite.get("heldout") and t.startswith(TASK_PREFIX)]
    if not roles:
        return out, []
    n_docs = suite.get("heldout_limit") or suite.get("limit")
    corpora = _role_corpora()
    docs = {}
    for role in roles:
        spec = CorpusSpec.from_config(corpora[role], key=f"corpora.{role}")
        docs[role] = []
        for _, text in split_documents(spec, data_dir, "validation"):
            docs[role].append(text)
            if n_docs and len(docs[role]) >= int(n_docs):
                break
    return out, render_heldout_tasks(docs, out)


@contextlib.contextmanager
def _model_time(model: Any) -> Iterator[dict]:
    """Seconds spent inside ``model.forward`` and the (padded) tokens it read, while the block runs."""
    stats = {"model_s": 0.0, "tokens": 0}
    start: list[float] = []

    def before(_module: Any, args: tuple, kwargs: dict) -> None:
        ids = args[0] if args else kwargs.get("input_ids")
        stats["tokens"] += int(ids.numel())
        start.append(time.perf_counter())

    def after(*_: Any) -> None:
        stats["model_s"] += time.perf_counter() - start.pop()

    handles = [model.register_forward_pre_hook(before, with_kwargs=True), model.register_forward_hook(after)]
    try:
        yield stats
    finally:
        for h in handles:
            h.remove()


def run_suite(model: Any, tokenizer: Any, suite: dict, heldout: tuple[Path, list[str]], bench: Path, **how) -> dict:
    """Time one setting: held-out and benchmark seconds, time in the model, tokens, lines printed, rows."""
    from cpt_experiments.eval.harness import evaluate_model

    others = [t for t in suite["tasks"] if not (suite.get("heldout") and t.startswith("cpt_heldout_"))]
    by_limit: dict[Any, list[str]] = {}
    for task in others:  # one lm-eval call per distinct limit, as pipeline.evaluation does
        limit = (suite.get("task_limits") or {}).get(task, suite.get("limit"))
        by_limit.setdefault(int(limit) if limit is not None and limit >= 1 else limit, []).append(task)
    common = dict(num_fewshot=suite.get("num_fewshot"), offline=True, **how)
    rows, times = [], {}
    with _captured_lines() as lines, _model_time(model) as inside:
        t0 = time.perf_counter()
        if heldout[1]:
            rows += evaluate_model(model, tokenizer, heldout[1], extra_include_dirs=[heldout[0]], **common)
        t1 = time.perf_counter()
        for limit, tasks in by_limit.items():
            rows += evaluate_model(model, tokenizer, tasks, benchmark_dir=bench, limit=limit, **common)
        times = {"heldout_s": t1 - t0, "bench_s": time.perf_counter() - t1}
    return {**times, **inside, "lines": lines[0], "rows": rows}


def _max_diff(rows: list[dict], ref: list[dict]) -> float:
    a = {(r["task"], r["metric"]): r["value"] for r in rows}
    b = {(r["task"], r["metric"]): r["value"] for r in ref}
    if set(a) != set(b):
        return float("nan")
    return max((abs(a[k] - b[k]) / max(1.0, abs(b[k])) for k in a), default=0.0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cpt_experiments.bench eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="exported stage folder (default: random model)")
    parser.add_argument("--suite", default="cpu", help="a conf/eval_suite/*.yaml name (local tasks only)")
    parser.add_argument("--limit", type=float, default=None, help="every benchmark task at this limit")
    parser.add_argument("--heldout-limit", type=int, default=None, help="override the suite's heldout_limit")
    parser.add_argument("--batch-tokens", default="", help="extra suite rows with these batch_tokens, e.g. 1024,16384")
    parser.add_argument("--no-default", action="store_true", help="skip the lm-eval default row (slow)")
    parser.add_argument("--data-dir", type=Path, default=None, help="corpora folder (default: $CPT_DATA_DIR)")
    parser.add_argument("--benchmark-dir", type=Path, default=None, help="default: <data-dir>/benchmarks")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every setting; the fastest round counts")
    return parser


def _suite(args: argparse.Namespace) -> dict:
    """The suite file as a dict, with ``--limit`` / ``--heldout-limit`` applied."""
    from omegaconf import OmegaConf

    suite = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "eval_suite" / f"{args.suite}.yaml"))
    if args.limit is not None:  # every benchmark task at this limit
        suite.update(limit=args.limit, task_limits={})
    if args.heldout_limit is not None:
        suite["heldout_limit"] = args.heldout_limit
    return suite


def _settings(args: argparse.Namespace, suite: dict) -> list[tuple[str, dict]]:
    """(row name, ``evaluate_model`` keywords) of every setting to time; the first is the baseline."""
    ours = {"batch_size": suite.get("batch_size", 8), "batch_tokens": suite.get("batch_tokens")}
    settings = [] if args.no_default else [("lm-eval default", DEFAULT)]
    settings.append((f"suite {args.suite}", {**ours, "quiet": True, "cache_templates": True}))
    for value in filter(None, args.batch_tokens.split(",")):
        settings.append((f"batch_tokens={int(value)}", {**ours, "batch_tokens": int(value), "quiet": True}))
    return settings


def _time_settings(
    args: argparse.Namespace, suite: dict, settings: list[tuple[str, dict]], data_dir: Path, bench: Path
) -> list[tuple[str, dict]]:
    """(row name, fastest of ``--rounds`` ``run_suite`` results) per setting, after one untimed warm-up."""
    from cpt_experiments.eval.checkpoint import load_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or _random_checkpoint(data_dir, Path(tmp))
        model, tokenizer = load_checkpoint(checkpoint)
        heldout = _heldout(suite, data_dir, Path(tmp) / "heldout")
        # Warm-up: the datasets cache of every file, the task index, lm-eval's imports.
        run_suite(model, tokenizer, {**suite, "limit": 1, "task_limits": {}}, heldout, bench, **settings[-1][1])
        results = []
        for name, how in settings:
            best = None
            for _ in range(args.rounds):
                got = run_suite(model, tokenizer, suite, heldout, bench, **how)
                if best is None or got["heldout_s"] + got["bench_s"] < best["heldout_s"] + best["bench_s"]:
                    best = got
            results.append((name, best))
    return results


def _print_table(args: argparse.Namespace, suite: dict, results: list[tuple[str, dict]]) -> None:
    """One row per setting: seconds, time in the model, tokens, lines printed, speed-up and score difference."""
    n_bench = sum(1 for r in results[0][1]["rows"] if r["metric"] in ("acc", "bits_per_byte"))
    print(
        f"suite {args.suite} on {args.checkpoint or 'a random neox_d128'}: {len(suite['tasks'])} "
        f"tasks ({n_bench} task rows), limit {suite.get('limit')}, heldout_limit {suite.get('heldout_limit')}, "
        f"{args.threads} threads, best of {args.rounds}"
    )
    print(
        f"{'setting':<22}{'held-out s':>11}{'bench s':>9}{'total s':>9}{'model s':>9}{'tokens':>10}{'tok/s':>8}"
        f"{'lines':>7}{'x faster':>10}{'max |Δ|':>9}"
    )
    base_total = results[0][1]["heldout_s"] + results[0][1]["bench_s"]
    for name, r in results:
        total = r["heldout_s"] + r["bench_s"]
        diff = _max_diff(r["rows"], results[0][1]["rows"])
        print(
            f"{name:<22}{r['heldout_s']:>11.1f}{r['bench_s']:>9.1f}{total:>9.1f}{r['model_s']:>9.1f}{r['tokens']:>10,}"
            f"{r['tokens'] / max(r['model_s'], 1e-9):>8,.0f}{r['lines']:>7}{base_total / total:>10.2f}{diff:>9.1e}"
        )
    print("model s: inside the model's forward (tokens: padded tokens it read); max |Δ|: largest score")
    print("difference from the first row (relative for values above 1); lines: printed to stdout and stderr.")


def main(argv: list[str] | None = None) -> int:
    """Time every setting on one checkpoint and print the table; 2 after a one-line error."""
    args = _parser().parse_args(argv)

    import torch  # after parsing: --help needs neither torch nor lm-eval

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[%(name)s][%(levelname)s] - %(message)s")
    torch.set_num_threads(args.threads)
    data_dir = args.data_dir or _default_data_dir()
    bench = args.benchmark_dir or data_dir / "benchmarks"
    suite = _suite(args)
    settings = _settings(args, suite)
    try:
        results = _time_settings(args, suite, settings, data_dir, bench)
    except CPTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_table(args, suite, results)
    return 0
