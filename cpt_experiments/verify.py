"""``python -m cpt_experiments.verify RESULTS_DIR [RESULTS_DIR ...]``: do the results still come from the code?

python -m cpt_experiments.verify results/cpu/paper1 results/cpu/paper2 results/cpu/benchmarks
CPT_DATA_DIR=../shared/data cpt-verify results/cpu/paper1 --no-figures

For every runs row: its config snapshot exists, its git commit is in the history, and its stage hash is
rebuilt from the snapshot by the current code (nothing trained, no corpus tokenized; the tokenizer is
trained once per setting, or reused from ``--cache-dir``); then every figure is redrawn into a temporary
folder. Prints one line per mismatch. Exit status: 0 all rows checked and matching; 1 a mismatch;
2 no mismatch, but some rows could not be checked (corpora missing from the data dir) or bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from cpt_experiments.errors import CPTError
from cpt_experiments.pipeline.audit import Auditor, audit, check_figures

DEFAULT_DATA_DIR = "../shared/data"  # as paths.data_dir: $CPT_DATA_DIR, else ../shared/data


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cpt_experiments.verify", description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path, help="results directories (runs.csv and configs/)")
    p.add_argument("--data-dir", default=os.environ.get("CPT_DATA_DIR") or DEFAULT_DATA_DIR,
                   help="the corpora the snapshots name (default: $CPT_DATA_DIR, else ../shared/data)")  # fmt: skip
    p.add_argument("--cache-dir", default=os.environ.get("CPT_OUTPUT_DIR", "outputs") + "/cache",
                   help="tokenizers are reused from / trained into <cache-dir>/tokenizers (default: training's)")  # fmt: skip
    p.add_argument(
        "--repo", type=Path, default=None, help="git repository of the rows' commits (default: this checkout)"
    )
    p.add_argument("--no-figures", action="store_true", help="skip redrawing the figures")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    repo = {"repo": args.repo.resolve()} if args.repo else {}
    auditor = Auditor(Path(args.data_dir).resolve(), Path(args.cache_dir).resolve(), **repo)
    problems, unchecked = 0, 0
    for results_dir in args.results:
        start = time.perf_counter()
        try:
            report = audit(results_dir, auditor)
        except CPTError as exc:  # no runs table, unreadable table
            print(f"error: {results_dir}: {exc}", file=sys.stderr)
            return 2
        lines = report.problems + ([] if args.no_figures else check_figures(results_dir))
        for line in lines:
            print(line)
        for line in report.unchecked:
            print(f"unchecked: {line}")
        problems, unchecked = problems + len(lines), unchecked + len(report.unchecked)
        print(f"{results_dir}: {report.rows} rows, {report.checked} stage hashes rebuilt, {len(lines)} mismatches, "
              f"{len(report.unchecked)} snapshots unchecked ({time.perf_counter() - start:.0f} s)")  # fmt: skip
    return 1 if problems else 2 if unchecked else 0


if __name__ == "__main__":
    sys.exit(main())
