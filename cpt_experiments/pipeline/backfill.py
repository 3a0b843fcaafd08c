"""Fill columns that are a pure function of a row's recorded config into runs rows written before the column existed.

Today: ``params_non_embedding`` (added with the tokens-per-parameter axis) and ``params`` (paper 2's first rows
predate it). The values are recomputed from the run's config snapshot (``configs/<config_hash>.yaml``: the
model shape and vocabulary), and a row is only filled when the snapshot provably describes the model that
trained it: the recomputed total equals the row's ``params``, or, where that is empty, the recomputed training
FLOPs per token equal the row's ``stage_flops / stage_tokens``. Anything else is refused, never guessed. Rows are rewritten through ``results.store.append`` (atomic, locked); no
measured value is touched.

    python -m cpt_experiments.pipeline.backfill results/cpu/paper1 results/cpu/paper2
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
from cpt_experiments.training.model import build_model, model_flops_per_token, parameter_counts, resolve_vocab_size


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dirs", nargs="+", type=Path, help="folders holding runs.csv and configs/")
    args = parser.parse_args(argv)
    try:
        for d in args.results_dirs:
            print(f"{d}: filled parameter counts in {backfill_params(d)} rows")
    except (ConfigError, DataError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
