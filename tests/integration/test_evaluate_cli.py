"""`python -m cpt_experiments.evaluate` on a checkpoint with a corrupt weights file: one line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from cpt_experiments.training.model import build_model, load_model_cfg

REPO = Path(__file__).resolve().parents[2]


def test_corrupt_weights_file_is_one_line(tmp_path: Path, data_dir: Path) -> None:
    vocab = {w: i for i, w in enumerate(["[UNK]", "the", "a", "cat", "dog", "sat"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    ckpt = tmp_path / "final"
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(ckpt)
    build_model(load_model_cfg("neox_d32"), len(vocab)).save_pretrained(ckpt)
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a copy cut short
    proc = subprocess.run(
        [sys.executable, "-m", "cpt_experiments.evaluate", f"checkpoint={ckpt}", "eval_suite=heldout",
         f"paths.data_dir={data_dir}", f"paths.output_dir={tmp_path / 'out'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "WANDB_MODE": "offline"},
    )  # fmt: skip
    assert proc.returncode == 2  # a DataError naming the file, found before the loader reads it
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "model.safetensors: truncated" in errors[0] and "Traceback" not in proc.stderr
