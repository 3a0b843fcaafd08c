"""CLI: ``python -m cpt_experiments.figures --results DIR [--out DIR] [--only NAME ...] [--strict]``.

Builds every figure whose data is present and reports the others as skipped with the reason,
so a partial sweep still gives its figures. Exit status: 0, or 1 if a figure failed with an
unexpected error or (with ``--strict``) any figure was skipped; 2 for bad arguments (no ``runs.csv``
in ``--results``, an unwritable ``--out``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from cpt_experiments.errors import DataError
from cpt_experiments.figures import FIGURES, style
from cpt_experiments.files import probe_writable
from cpt_experiments.results import store

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cpt-figures",
        description="Draw every figure whose data is present from a results directory's tables "
        "(cpt-figures = python -m cpt_experiments.figures); the others are reported as skipped with the reason.",
        epilog="most common invocations:\n"
        "  cpt-figures --results outputs/results                     # every figure -> outputs/results/figures\n"
        "  cpt-figures --results results/cpu/paper1 --out /tmp/figs  # a committed reproduction, elsewhere\n"
        "  cpt-figures --results outputs/results --only loss_curves --formats pdf",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--results", type=Path, required=True, help="results directory with runs/curves/evals.csv")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: <results>/figures)")
    p.add_argument("--only", nargs="+", choices=FIGURES, metavar="NAME", help=f"subset of: {', '.join(FIGURES)}")
    p.add_argument("--formats", nargs="+", default=list(style.FORMATS), choices=["png", "pdf", "svg"])
    p.add_argument("--strict", action="store_true", help="exit non-zero if any figure is skipped for missing data")
    return p


def build(results_dir: Path, out_dir: Path, names: list[str], formats: list[str]) -> dict[str, str]:
    """Make and save each named figure; return name -> "ok" | "skipped: <reason>" | "failed: <error>"."""

    status = {}
    for name in names:
        module = importlib.import_module(f"cpt_experiments.figures.{name}")
        try:
            fig = module.make(results_dir)
        except DataError as exc:
            status[name] = f"skipped: {exc}"
            continue
        except Exception as exc:  # a bug in one figure must not hide the others
            log.exception("figure %s failed", name)
            status[name] = f"failed: {type(exc).__name__}: {exc}"
            continue
        paths = style.save(fig, out_dir, name, formats)
        status[name] = "ok: " + ", ".join(str(p) for p in paths)
    return status


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    style.use_agg()
    out_dir = args.out or args.results / "figures"
    # Checked before drawing anything: a typo in --results must not end in "skipped 7" and exit 0.
    if not store.table_path(args.results, "runs").is_file():
        print(f"error: --results {args.results}: no runs.csv there (a results directory holds runs/curves/evals.csv)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:  # a corrupt table is one line and exit 2, not "skipped" by every figure that reads it
        store.check_tables(args.results)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        probe_writable(out_dir)
    except OSError as exc:
        print(f"error: --out {out_dir}: not writable ({exc.strerror or exc})", file=sys.stderr)
        return 2
    status = build(args.results, out_dir, list(args.only or FIGURES), args.formats)
    for name, s in status.items():
        print(f"{name:20s} {s}")
    skipped = [n for n, s in status.items() if s.startswith("skipped")]
    failed = [n for n, s in status.items() if s.startswith("failed")]
    print(f"made {len(status) - len(skipped) - len(failed)}, skipped {len(skipped)}, failed {len(failed)} -> {out_dir}")
    return 1 if failed or (args.strict and skipped) else 0


if __name__ == "__main__":
    sys.exit(main())
