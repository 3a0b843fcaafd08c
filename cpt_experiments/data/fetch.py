"""``python -m cpt_experiments.data.fetch``: download the hub stand-in corpora and the offline benchmark files.

    python -m cpt_experiments.data.fetch --data-dir data                  # corpora (4M words each) + benchmarks
    python -m cpt_experiments.data.fetch --data-dir data --only corpora --max-words 500000
    python -m cpt_experiments.data.fetch --data-dir data --list           # what would be fetched, from where

Corpora (:mod:`cpt_experiments.data.fetch_corpora`): each Hub corpus config
(``conf/corpus/{pile,slimpajama,fineweb2_de}_hub.yaml``) is streamed through the loader of
:mod:`cpt_experiments.data.loader` and its first documents, up to ``--max-words`` / ``--max-documents``, are
written to ``<data dir>/hub/<corpus name>.jsonl`` (fields ``text`` and, where the corpus has one, ``id``);
``corpora=fetched`` (``conf/corpus/*_fetched.yaml``) reads them. Benchmarks
(:mod:`cpt_experiments.data.fetch_benchmarks`): the files the offline lm-eval tasks read
(``cpt_experiments/eval/tasks``), from the datasets the stock lm-eval tasks name (or, for the Okapi German sets and
the German word-order pairs, the pinned GitHub files the local copies were made from), in the local files' schema,
under ``<data dir>/benchmarks/``.

Each file is written atomically (a killed fetch leaves only a ``.*.tmp-*`` file) and recorded in
``<data dir>/fetch_manifest.json`` (source, resolved revision, caps, rows, bytes, sha256); a rerun skips a file
whose entry matches its request and its bytes (:mod:`cpt_experiments.data.download`). ``--mirror DIR`` reads every
source from local copies laid out as ``DIR/<hub id>`` and ``DIR/<host>/<url path>`` (an offline cluster; the tests).
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import os
import sys
from pathlib import Path

from cpt_experiments.data.download import DEFAULT_MAX_WORDS, MANIFEST, Caps, Item, fetch
from cpt_experiments.data.fetch_benchmarks import benchmark_items
from cpt_experiments.data.fetch_corpora import HUB_CORPORA, corpus_items
from cpt_experiments.errors import CPTError, DataError
from cpt_experiments.files import SAMPLE_DATA_DIR as SAMPLE_DIR  # the embedded sample: read-only package data


def select(items: list[Item], only: list[str] | None) -> list[Item]:
    """Items whose file matches any of ``only`` (``corpora``, ``benchmarks`` or glob patterns); all if None."""
    if not only:
        return items
    keep = [
        it
        for it in items
        if any(
            (p == "corpora" and it.corpus) or (p == "benchmarks" and not it.corpus) or fnmatch.fnmatch(it.file, p)
            for p in only
        )
    ]
    if not keep:
        raise DataError(f"--only {' '.join(only)}: matches no file (see --list)")
    return keep


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cpt-fetch",
        description="Download the hub stand-in corpora and the offline benchmark files into a local data folder "
        "(cpt-fetch = python -m cpt_experiments.data.fetch).",
        epilog="most common invocations:\n"
        "  cpt-fetch --data-dir data                        # corpora (4M words each) + benchmark files\n"
        "  cpt-fetch --data-dir data --only benchmarks      # only the offline lm-eval benchmark files\n"
        "  cpt-fetch --data-dir data --list                 # what would be fetched, from where\n"
        "then: cpt-train experiment=cpt scale=cpu corpora=fetched paths.data_dir=data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-dir", type=Path, default=None, help="destination (default: $CPT_DATA_DIR)")
    p.add_argument(
        "--only", nargs="+", metavar="WHAT", help="corpora | benchmarks | file globs, e.g. 'benchmarks/blimp/*'"
    )
    p.add_argument(
        "--corpus", nargs="+", default=list(HUB_CORPORA), metavar="NAME", help="hub corpus configs in conf/corpus"
    )
    p.add_argument("--max-words", type=int, default=DEFAULT_MAX_WORDS, help="per corpus; 0 = no cap")
    p.add_argument("--max-documents", type=int, default=0, help="per corpus; 0 = no cap")
    p.add_argument(
        "--mirror", type=Path, default=None, help="read sources from local copies: DIR/<hub id>, DIR/<host>/<path>"
    )
    p.add_argument("--force", action="store_true", help="fetch again even if the manifest entry matches")
    p.add_argument("--list", action="store_true", help="print file <- source and exit")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        items = select(corpus_items(args.corpus) + benchmark_items(), args.only)
        if args.list:
            for it in items:
                print(f"{it.file:60s} <- {it.source.label()}")
            return 0
        env = os.environ.get("CPT_DATA_DIR")
        if args.data_dir is None and not env:
            raise DataError("fetch: no destination; pass --data-dir DIR (or set CPT_DATA_DIR)")
        data_dir = Path(args.data_dir or env).expanduser()
        if data_dir.resolve().is_relative_to(SAMPLE_DIR):
            raise DataError(f"{data_dir}: the embedded sample ships with the package; fetch into another folder")
        caps = Caps(args.max_documents or None, args.max_words or None)
        status = fetch(data_dir, items, caps, args.mirror, progress=not args.no_progress, force=args.force)
    except CPTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = sum(s == "fetched" for s in status.values())
    print(f"{done} files fetched, {len(status) - done} up to date, in {data_dir} (manifest: {data_dir / MANIFEST})")
    print(
        f"use them: python -m cpt_experiments.train corpora=fetched paths.data_dir={data_dir} ... (benchmarks: same paths.data_dir)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
