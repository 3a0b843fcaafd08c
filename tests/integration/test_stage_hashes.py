"""Stage hashes and run config hashes do not move when a speed-only key is added or switched.

The expected values below were computed at commit b6bc389, before ``train.attention``, ``train.compile`` and
``train.gradient_checkpointing`` existed, by composing the same overrides against the synthetic corpora of
``tests/conftest.py`` (300 documents per corpus, seed 0) and running ``prepare_run`` + ``hash_stages`` there.
A stage cache, a results table or a config snapshot made before these keys existed is therefore still found.
(A deliberate change of what a run's identity covers updates them, with a note in its commit.)
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import compose

from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.token_cache import cache_key
from cpt_experiments.data.tokenizer import get_tokenizer, tokenizer_hash
from cpt_experiments.pipeline.context import prepare_run, typed_config
from cpt_experiments.pipeline.planning import build_stages, hash_stages, stage_hashes
from cpt_experiments.pipeline.records import config_hash

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "results" / "cpu" / "paper1"

# Computed at b6bc389 (before the speed-only keys existed): stage hashes and the run's config hash.
AT_BASE = {
    ("experiment=quickstart", "scale=smoke"): (
        {"pretrain": "2ba3bfd749a05b8b6e2d", "de_replay0": "ff5efd19ff3c9c35df37",
         "de_replay25": "5bf98c3ac6479e0f0b89", "union": "6590ec2853991edee60e"},
        "8d98b4b79f1970b54ef92884433ba7677789296a70e41625bfcc84eda36c8f9d",
    ),
    ("experiment=paper1/final", "scale=cpu"): (
        {"pretrain": "cf99d33b2f574fcc691f", "continual": "27ba9ad7a5ffd16afc3b",
         "new_only": "c8dae15b3a325017caf7", "union": "86e8029321d7e3605e64"},
        "7253c7a091db1a46524a93a32e55200b9068706d4fe860f650054ead1ded86b5",
    ),
}  # fmt: skip
SPEED_OVERRIDES = ["train.attention=eager", "train.compile=true", "train.gradient_checkpointing=true"]


def _hashes(tmp: Path, data_dir: Path, smoke_cache: Path, *overrides: str) -> tuple[dict[str, str], str]:
    cfg = compose(*overrides, f"paths.data_dir={data_dir}", f"paths.output_dir={tmp}", f"paths.cache_dir={smoke_cache}")
    root, plain = typed_config(cfg)
    stages = build_stages(root.experiment)
    return hash_stages(stages, prepare_run(root, stages)), config_hash(plain)


@pytest.mark.parametrize("extra", [[], SPEED_OVERRIDES], ids=["defaults", "speed-keys-switched"])
@pytest.mark.parametrize("overrides", list(AT_BASE), ids=["quickstart-smoke", "paper1_final-cpu"])
def test_hashes_equal_those_of_the_base_commit(tmp_path, data_dir, smoke_cache, overrides, extra):
    stage_hashes, cfg_hash = _hashes(tmp_path, data_dir, smoke_cache, *overrides, *extra)
    assert (stage_hashes, cfg_hash) == AT_BASE[overrides]


def test_precision_is_part_of_every_stage_hash(tmp_path, data_dir, smoke_cache):
    # bf16 products change the arithmetic: a GPU bf16 stage never reuses a CPU fp32 one (and vice versa).
    overrides = ("experiment=quickstart", "scale=smoke")
    bf16, _ = _hashes(tmp_path, data_dir, smoke_cache, *overrides, "trainer.precision=bf16-mixed")
    assert set(bf16.values()).isdisjoint(AT_BASE[overrides][0].values())


@pytest.mark.real_data
def test_committed_paper1_final_hashes_are_reproduced(real_data_dir, tmp_path):
    """Every ``paper1_final`` row of ``results/cpu/paper1/runs.csv``: its stage hash and config hash, recomputed.

    Cheap: the tokenizer is trained (seconds) but no corpus is tokenized; a token cache's key needs only the
    corpus spec, the file's digest and the tokenizer (``token_cache.cache_key``).
    """
    rows = [r for r in csv.DictReader(open(COMMITTED / "runs.csv")) if r["experiment"] == "paper1_final"]
    # The preset's own four-stage runs; the schedule-split unions of session 8 (one stage each, trained with
    # experiment.union.chain_schedule + experiment.only, named by run_hash) are checked by `verify` in CI.
    split = {r["run_id"] for r in rows if r["stage"] == "union_cpt_schedule"}
    assert len(split) == 6
    rows = [r for r in rows if r["run_id"] not in split]
    assert len(rows) == 24
    runs = {(r["run_id"], r["variant"], int(r["seed"])) for r in rows}
    tokenizer = None
    for run_id, variant, seed in sorted(runs):
        shift, ratio = variant.split("-replay")
        cfg = compose(
            "experiment=paper1/final", "scale=cpu", f"shift={shift}", f"replay.ratio={ratio}", f"seed={seed}",
            f"paths.data_dir={real_data_dir}", f"paths.output_dir={tmp_path}", "paths.results_dir=results/cpu/paper1",
        )  # fmt: skip
        root, plain = typed_config(cfg)
        if tokenizer is None:
            spec = CorpusSpec.from_config(root.corpora[root.tokenizer.train_corpus], key="tokenizer.train_corpus")
            tokenizer = get_tokenizer(root.tokenizer, spec, str(real_data_dir), root.paths.cache_dir)
        keys = {
            role: cache_key(CorpusSpec.from_config(c, key=f"corpora.{role}"), "train", tokenizer, str(real_data_dir))
            for role, c in root.corpora.items()
        }
        geometry = SimpleNamespace(seq_len=root.model.seq_len, global_batch_windows=root.train.global_batch_windows)
        recomputed = stage_hashes(build_stages(root.experiment), root, tokenizer_hash(tokenizer), keys, geometry)
        committed = {r["stage"]: r for r in rows if r["run_id"] == run_id}
        assert recomputed == {stage: r["stage_hash"] for stage, r in committed.items()}, run_id
        assert {r["config_hash"] for r in committed.values()} == {config_hash(plain)}, run_id
