"""Dispatch ``python -m cpt_experiments.bench <name> [args]`` to ``cpt_experiments.bench.<name>.main``."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "data": "tokenization and mixing-stream throughput",
    "mixing": "mixing-stream throughput only",
    "train": "Lightning path vs bare PyTorch loop",
    "eval": "an eval suite on one checkpoint: lm-eval's default settings vs the suite's",
    "gpu_check": "the prepared one-GPU check (bench, kill/resume, budget axis) into OUT_DIR",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in BENCHMARKS:
        known = ", ".join(f"{k} ({v})" for k, v in BENCHMARKS.items())
        print(f"usage: python -m cpt_experiments.bench NAME [args]; NAME is one of: {known}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"cpt_experiments.bench.{argv[0]}")
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
