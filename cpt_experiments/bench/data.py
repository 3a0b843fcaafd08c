"""Data-path throughput: tokenization and token-cache build on a real corpus, the mixing stream, vs training.

``python -m cpt_experiments.bench data [--data-dir DIR] [--corpus wiki_en] [--max-mb 4] [--seconds 3]``

Rows: pure batch tokenization (``encode_documents``, the call the cache uses) on the first ``--max-mb`` MB of
text; the end-to-end cache build of the same documents (read + split + tokenize + write + checksum); the mixing
stream (``cpt_experiments.bench.mixing.bench_mixing``); and the 15,000 tokens/s a CPU-scale training run consumes.
Target: the stream delivers at least 50x what training consumes, so data is never the bottleneck.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from cpt_experiments.data_dir import default_data_dir
from cpt_experiments.errors import CPTError
from cpt_experiments.files import CONF_DIR

TRAINING_TOKENS_PER_S = 15_000.0  # CPU scale (conf/scale/cpu.yaml): d=128, 4 layers, 2 cores
TARGET_X = 50.0


def _default_data_dir() -> Path:
    """The suite's own choice (``data_dir.default_data_dir``): $CPT_DATA_DIR, ../shared/data, else the embedded sample."""
    return Path(default_data_dir())


def _slice_spec(corpus: str, data_dir: Path, max_chars: int):
    """The shipped corpus config, capped to the documents that make up the first ``max_chars`` characters."""
    from omegaconf import OmegaConf

    from cpt_experiments.data.corpus import CorpusSpec
    from cpt_experiments.data.documents import iter_documents

    spec = CorpusSpec.from_config(OmegaConf.load(CONF_DIR / "corpus" / f"{corpus}.yaml"), key=f"corpus.{corpus}")
    texts: list[str] = []
    chars = 0
    for _, text in iter_documents(spec, data_dir):
        texts.append(text)
        chars += len(text)
        if chars >= max_chars:
            break
    # All documents count as "train" (fraction 0) so the build tokenizes exactly the measured slice.
    capped = dataclasses.replace(spec, max_documents=len(texts), validation_fraction=0.0, max_tokens=None)
    return capped, texts


def bench_tokenization(data_dir: Path, corpus: str, max_mb: float, vocab_size: int, cache_dir: Path) -> dict:
    """Tokens/s and MB/s (raw UTF-8) of batch encoding and of the full cache build on a corpus slice."""
    from cpt_experiments.data import token_cache as tc
    from cpt_experiments.data.tokenizer import get_tokenizer

    spec, texts = _slice_spec(corpus, data_dir, int(max_mb * 1e6))
    tok_cfg = {"kind": "bpe", "vocab_size": vocab_size, "min_frequency": 2, "train_max_chars": 4_000_000}
    t0 = time.perf_counter()
    tokenizer = get_tokenizer(tok_cfg, spec, data_dir, cache_dir)
    tokenizer_s = time.perf_counter() - t0
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6

    start = time.perf_counter()
    num_tokens = 0
    for i in range(0, len(texts), tc.BATCH_DOCS):
        num_tokens += sum(len(ids) + 1 for ids in tc.encode_documents(tokenizer, texts[i : i + tc.BATCH_DOCS]))
    encode_s = time.perf_counter() - start

    start = time.perf_counter()
    built = tc.build_token_cache(spec, "train", tokenizer, data_dir, cache_dir / "bench", progress=False)
    build_s = time.perf_counter() - start
    assert built.num_tokens == num_tokens, "cache build and direct encoding disagree"
    return {
        "documents": len(texts),
        "mb": mb,
        "tokens": num_tokens,
        "tokenizer_s": tokenizer_s,
        "encode_tokens_per_s": num_tokens / encode_s,
        "encode_mb_per_s": mb / encode_s,
        "build_tokens_per_s": num_tokens / build_s,
        "build_mb_per_s": mb / build_s,
    }


def _row(name: str, tokens_per_s: float | None, mb_per_s: float | None) -> str:
    tps = f"{tokens_per_s:>14,.0f}" if tokens_per_s is not None else f"{'n/a':>14}"
    mbs = f"{mb_per_s:>8.2f}" if mb_per_s is not None else f"{'-':>8}"
    ratio = f"{tokens_per_s / TRAINING_TOKENS_PER_S:>10,.0f}x" if tokens_per_s is not None else f"{'-':>11}"
    return f"{name:<34}{tps}{mbs}{ratio}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cpt_experiments.bench data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="corpora folder (default: $CPT_DATA_DIR, else ../shared/data, else the embedded sample)",
    )
    parser.add_argument("--corpus", default="wiki_en", help="a conf/corpus/*.yaml name with a local source")
    parser.add_argument("--max-mb", type=float, default=4.0, help="MB of raw text to tokenize")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of the mixing-stream measurement")
    parser.add_argument("--cache-dir", type=Path, default=None, help="reuse a tokenizer cache (default: temp dir)")
    args = parser.parse_args(argv)

    data_dir = args.data_dir or _default_data_dir()
    tok_result: dict | None = None
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = args.cache_dir or Path(tmp)
        corpus_file = CONF_DIR / "corpus" / f"{args.corpus}.yaml"
        if not corpus_file.is_file():
            print(f"unknown corpus {args.corpus!r}: no {corpus_file}")
            return 2
        try:
            tok_result = bench_tokenization(data_dir, args.corpus, args.max_mb, args.vocab_size, cache_dir)
        except CPTError as exc:  # a missing corpus must not hide the mixing number
            print(f"tokenization benchmark skipped: {exc}")
            print("  point --data-dir or CPT_DATA_DIR at the folder holding the corpora (A_en_wikipedia.jsonl ...)")
        mixing: dict[str, float] | None = None
        try:
            from cpt_experiments.bench.mixing import bench_mixing
        except ImportError as exc:
            print(f"mixing benchmark unavailable: {exc}")
        else:
            mixing = bench_mixing(seconds=args.seconds)

    if tok_result is not None:
        print(
            f"corpus {args.corpus}: {tok_result['documents']} documents, {tok_result['mb']:.2f} MB, "
            f"{tok_result['tokens']:,} tokens (vocab {args.vocab_size}; tokenizer ready in "
            f"{tok_result['tokenizer_s']:.1f} s)"
        )
    print(f"{'stage':<34}{'tokens/s':>14}{'MB/s':>8}{'x training':>11}")
    if tok_result is not None:
        print(_row("tokenization (encode_batch)", tok_result["encode_tokens_per_s"], tok_result["encode_mb_per_s"]))
        print(_row("token cache build (end to end)", tok_result["build_tokens_per_s"], tok_result["build_mb_per_s"]))
    print(_row("mixing stream (train loader)", mixing["tokens_per_s"] if mixing else None, None))
    print(_row("training consumption (CPU scale)", TRAINING_TOKENS_PER_S, None))
    if mixing:
        x = mixing["tokens_per_s"] / TRAINING_TOKENS_PER_S
        verdict = "meets" if x >= TARGET_X else "BELOW"
        print(f"stream / training = {x:,.0f}x ({verdict} the target >= {TARGET_X:.0f}x)")
    return 0
