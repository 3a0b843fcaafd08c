"""Load a stage's exported Hugging Face folder for evaluation, refusing pickles and cut-short weights."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cpt_experiments.errors import DataError


def load_checkpoint(checkpoint_dir: str | os.PathLike) -> tuple[Any, Any]:
    """(model, tokenizer) of a stage's exported HF folder (``save_pretrained`` model + tokenizer in
    one folder), from local files only, in float32, in eval mode; DataError if it is not one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = Path(checkpoint_dir)
    if not (path / "config.json").is_file():
        raise DataError(f"{path}: not an exported checkpoint (no config.json)")
    check_weights(path)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Loading weights" bar per checkpoint otherwise
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return model.eval(), tokenizer


def check_weights(folder: Path) -> None:
    """The folder's weights are complete safetensors files; DataError naming the file otherwise.

    A pickled ``pytorch_model.bin`` is refused (unpickling runs code); a ``.safetensors`` file must hold
    its whole header and every tensor it declares (a copy cut short fails here, not inside the loader).
    """
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in folder.glob("*.bin"))
        what = (
            f"holds {pickled[0]} (a pickle, not loaded: convert it to safetensors)"
            if pickled
            else "has no *.safetensors"
        )
        raise DataError(f"{folder}: {what}")
    for f in files:
        try:
            with open(f, "rb") as fh:
                head = fh.read(8)
                n = int.from_bytes(head, "little") if len(head) == 8 else -1
                raw = fh.read(n) if 0 < n < 100_000_000 else b""
            size = f.stat().st_size
        except OSError as exc:
            raise DataError(f"{f}: unreadable safetensors file ({exc.strerror or exc})") from None
        if 0 < n < 100_000_000 and len(raw) < n:
            raise DataError(f"{f}: truncated: {size} bytes, its header alone declares {8 + n}; re-export or restore it")
        try:
            header = json.loads(raw) if raw else None
        except ValueError:
            header = None
        if not isinstance(header, dict):
            raise DataError(f"{f}: not a complete safetensors file (header missing or cut)")
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        if size < 8 + n + end:
            raise DataError(f"{f}: truncated: {size} bytes, its header declares {8 + n + end}; re-export or restore it")
