"""Bring runs rows written by older code up to today's schema, from what the rows themselves recorded.

- Parameter counts: ``params_non_embedding`` (added with the tokens-per-parameter axis) and ``params`` (paper
  2's first rows predate it), recomputed from the run's config snapshot (``configs/<config_hash>.yaml``: model
  shape and vocabulary). A row is filled only when the snapshot provably describes the model that trained it:
  the recomputed total equals the row's ``params`` or, where that is empty, the recomputed training FLOPs per
  token equal the row's ``stage_flops / stage_tokens``. Anything else is refused, never guessed.
- Checkpoint paths: the training machine's absolute paths become paths under the output dir.

Rows are rewritten through ``results.store.append`` (atomic, locked); no measured value is touched.

    python -m cpt_experiments.pipeline.backfill results/cpu/paper1 results/cpu/paper2 results/cpu/benchmarks
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cpt_experiments.errors import ConfigError, DataError
from cpt_experiments.results import store
from cpt_experiments.training.architectures import resolve_vocab_size
from cpt_experiments.training.model import build_model, model_flops_per_token, parameter_counts


def _snapshot_model(results_dir: Path, config_hash: str) -> tuple[int, int, float]:
    """(total, non-embedding parameters, training FLOPs per token) of the model in ``configs/<config_hash>.yaml``."""
    path = results_dir / "configs" / f"{config_hash}.yaml"
    if not path.is_file():
        raise DataError(f"{path}: config snapshot missing; cannot recompute the parameter counts")
    cfg: dict[str, Any] = yaml.safe_load(path.read_text())["config"]
    model_cfg = cfg["model"]
    vocab = resolve_vocab_size(model_cfg, model_cfg.get("vocab_size") or cfg["tokenizer"]["vocab_size"])
    total, non_embedding = parameter_counts(model_cfg, vocab)
    fpt = model_flops_per_token(build_model(model_cfg, vocab, device="meta"), model_cfg["seq_len"])
    return total, non_embedding, fpt


def backfill_params(results_dir: str | Path) -> int:
    """Fill empty ``params`` / ``params_non_embedding`` cells of ``<results_dir>/runs``; return the rows filled."""
    results_dir = Path(results_dir)
    runs = store.load(results_dir, "runs")
    todo = runs[runs["params_non_embedding"].isna() | runs["params"].isna()]
    if todo.empty:
        return 0
    models = {h: _snapshot_model(results_dir, h) for h in todo["config_hash"].dropna().unique()}
    filled = todo.copy()
    for i, row in todo.iterrows():
        where = f"{results_dir}/runs: run {row['run_id']} stage {row['stage']}"
        if pd.isna(row["config_hash"]):
            raise DataError(f"{where}: no config_hash, so no snapshot; not filled")
        total, non_embedding, fpt = models[row["config_hash"]]
        if pd.notna(row["params"]):
            if total != int(row["params"]):
                raise DataError(
                    f"{where}: params {int(row['params'])} but its snapshot's model has {total}; not filled"
                )
        else:
            recorded = float(row["stage_flops"]) / float(row["stage_tokens"])
            if not abs(recorded - fpt) <= 1e-9 * fpt:
                raise DataError(f"{where}: {recorded:.6g} FLOPs/token recorded, its snapshot's model gives {fpt:.6g}")
            filled.loc[i, "params"] = total
        filled.loc[i, "params_non_embedding"] = non_embedding
    store.append(results_dir, "runs", filled)
    return len(filled)


def relative_checkpoints(results_dir: str | Path) -> int:
    """Rewrite absolute ``checkpoint`` cells of ``runs`` and ``evals`` as paths under the output dir
    (``stages/<hash>/final``, what ``records.output_relative`` writes today); return the cells rewritten.

    Rows written before that recorded the training machine's absolute path; the part from ``stages/`` on
    is the stage cache's own layout (``paths.stage_dir`` = ``<output_dir>/stages``), the rest was the machine.
    """
    results_dir, changed = Path(results_dir), 0
    for table in ("runs", "evals"):
        if not store.table_path(results_dir, table).is_file():
            continue
        rows = store.load(results_dir, table)
        cells = rows["checkpoint"].astype("string")
        absolute = (
            cells.notna() & cells.str.startswith("/").fillna(False) & cells.str.contains("/stages/").fillna(False)
        )
        if absolute.any():
            rows.loc[absolute, "checkpoint"] = cells[absolute].str.replace(r"^.*?/(stages/)", r"\1", regex=True)
            store.append(results_dir, table, rows)
            changed += int(absolute.sum())
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dirs", nargs="+", type=Path, help="folders holding runs.csv and configs/")
    args = parser.parse_args(argv)
    try:
        for d in args.results_dirs:
            print(f"{d}: filled parameter counts in {backfill_params(d)} rows")
            print(f"{d}: made {relative_checkpoints(d)} checkpoint paths relative to the output dir")
    except (ConfigError, DataError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
