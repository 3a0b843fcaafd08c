"""The stage cache record: checksummed final/, verification, repair hooks, stale temporaries, modes."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from cpt_experiments.errors import CacheError
from cpt_experiments.pipeline.stage_cache import FINAL_SHA256, StageResult, locked, stage_dir


def finished(tmp_path):
    sd = stage_dir(tmp_path / "stages", "abc123")
    sd.final_dir.mkdir(parents=True)
    (sd.final_dir / "config.json").write_text("{}")
    (sd.final_dir / "model.safetensors").write_bytes(b"weights" * 100)
    sd.mark_done({"stage": "pretrain", "hash": "abc123", "steps": 4, "tokens": 64, "wall_s": 1.5})
    return sd


def test_done_record_holds_checksums_of_final_but_the_summary_does_not(tmp_path):
    sd = finished(tmp_path)
    doc = json.loads(sd.done_file.read_text())
    assert set(doc[FINAL_SHA256]) == {"config.json", "model.safetensors"}
    assert sd.summary() == {"stage": "pretrain", "hash": "abc123", "steps": 4, "tokens": 64, "wall_s": 1.5}
    assert sd.done_problem() is None and sd.is_done()


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_a_damaged_final_model_is_detected_and_named(tmp_path, damage):
    sd = finished(tmp_path)
    model = sd.final_dir / "model.safetensors"
    data = model.read_bytes()
    if damage == "truncate":
        model.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        model.write_bytes(data[:10] + bytes([data[10] ^ 1]) + data[11:])
    else:
        model.unlink()
    problem = sd.done_problem()
    assert problem is not None and str(model) in problem
    with pytest.raises(CacheError) as info:
        sd.is_done()
    assert "\n" not in str(info.value) and str(sd.root) in str(info.value)


def test_unreadable_marker_is_a_problem_not_a_traceback(tmp_path):
    sd = finished(tmp_path)
    sd.done_file.write_text('{"steps": 4, "tok')  # e.g. copied by hand and cut short
    assert "unreadable stage marker" in sd.done_problem()


def test_stages_finished_before_checksums_existed_are_still_reused(tmp_path):
    sd = finished(tmp_path)
    sd.done_file.write_text(json.dumps({"stage": "pretrain", "hash": "abc123", "steps": 4, "tokens": 64}))
    assert sd.done_problem() is None and sd.is_done()


def test_a_marker_without_a_required_key_is_a_problem_not_a_key_error(tmp_path):
    sd = finished(tmp_path)
    sd.done_file.write_text(json.dumps({"stage": "pretrain", "hash": "abc123", "steps": 4}))  # hand-edited
    assert sd.done_problem() == f"{sd.done_file}: stage marker lacks 'tokens'"


def test_unmark_done_forgets_the_stage(tmp_path):
    sd = finished(tmp_path)
    sd.unmark_done()
    assert not sd.done_file.exists() and not sd.final_dir.exists() and not sd.is_done()


def test_clean_stale_temps_under_the_lock(tmp_path):
    sd = finished(tmp_path)
    sd.ckpt_dir.mkdir()
    stale = [sd.ckpt_dir / ".last.ckpt.tmp-k1", sd.root / ".done.json.tmp-k2", sd.root / ".final.tmp-k3"]
    stale[0].write_bytes(b"half a checkpoint")
    stale[1].write_text("{")
    stale[2].mkdir()
    past = time.time() - 600
    for p in stale:
        os.utime(p, (past, past))
    with locked(sd):
        removed = sd.clean_stale_temps()
    assert sorted(removed) == sorted(stale)
    assert not any(p.exists() for p in stale) and sd.is_done()


def test_records_are_group_readable_under_a_group_umask(tmp_path):
    old = os.umask(0o002)
    try:
        sd = finished(tmp_path)
        sd.write_spec({"stage": "pretrain"})
    finally:
        os.umask(old)
    for path in (sd.done_file, sd.spec_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o664


def test_stage_result_reads_the_record_and_writes_it_back_unchanged(tmp_path):
    sd = stage_dir(tmp_path / "stages", "abc123")
    sd.final_dir.mkdir(parents=True)
    (sd.final_dir / "config.json").write_text("{}")
    summary = {
        "stage": "pretrain", "hash": "abc123", "steps": 4, "tokens": 64, "tokens_per_source": {"en": 64},
        "realised_fractions": {"en": 1.0}, "epochs_per_source": {"en": 0.5}, "wall_s": 1.5,
        "segments": [{"start": 0, "end": 4, "wall_s": 1.5, "by": "run-a"}], "trained_by": ["run-a"], "flops": 1e9,
    }  # fmt: skip
    sd.mark_done(summary)
    assert sd.result() == StageResult(**summary)
    assert sd.result().summary() == sd.summary() == summary


def test_stage_result_of_an_early_record_defaults_what_it_lacks(tmp_path):
    result = StageResult.from_summary({"stage": "pretrain", "hash": "abc123", "steps": 4, "tokens": 64})
    assert (result.wall_s, result.flops, result.segments, result.trained_by) == (0.0, 0.0, [], [])
