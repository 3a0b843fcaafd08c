"""Minimal-pair tasks (``cpt_blimp``, ``cpt_multiblimp_de``) on the hand-made pair files with a tiny random
GPT-NeoX: per-pair accuracy equals a direct comparison of the two sentences' log-probabilities, group rows
are unweighted means over paradigms (per field and overall), ``limit`` takes the first pairs, and a quiet
evaluation prints no progress bars and one log line per requested task."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from test_eval_harness import CONTEXT, direct_loglikelihood, tiny_model_and_tokenizer

from cpt_experiments.errors import DataError
from cpt_experiments.eval.harness import evaluate_model
from cpt_experiments.eval.task_families import slug

FAMILIES = {"cpt_blimp": "blimp", "cpt_multiblimp_de": "multiblimp_de"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _sentence_logprob(model, tokenizer, sentence: str) -> float:
    """log P(sentence) as lm-eval scores a choice after an empty context: after EOS, with the target
    delimiter (a space) in front."""
    tokens = tokenizer(" " + sentence, add_special_tokens=False)["input_ids"]
    return direct_loglikelihood(model, [tokenizer.eos_token_id], tokens, CONTEXT)


def _expected(benchmark_dir: Path, limit: int | None) -> dict[str, float]:
    """Accuracy of every member task, field group and family, computed directly from the pair files."""
    model, tokenizer = tiny_model_and_tokenizer()
    out: dict[str, float] = {}
    for family, folder in FAMILIES.items():
        members, fields = {}, {}
        for path in sorted((benchmark_dir / folder).glob("*.jsonl")):
            pairs = [json.loads(line) for line in path.read_text().splitlines()][:limit]
            # lm-eval takes the argmax of [log P(good), log P(bad)]: a tie counts for the good sentence.
            hits = [
                _sentence_logprob(model, tokenizer, p["sentence_good"])
                >= _sentence_logprob(model, tokenizer, p["sentence_bad"])
                for p in pairs
            ]
            members[f"{family}_{path.stem}"] = float(np.mean(hits))
            fields.setdefault(slug(pairs[0]["field"]), []).append(float(np.mean(hits)))
        out.update(members)
        out[family] = float(np.mean(list(members.values())))  # over paradigms, not over fields
        if family == "cpt_blimp":
            out.update({f"cpt_blimp_field_{f}": float(np.mean(v)) for f, v in fields.items()})
    return out


@pytest.mark.parametrize("batch_tokens, limit", [(None, None), (2048, 2)])
def test_accuracy_is_the_direct_pairwise_comparison(benchmark_dir: Path, batch_tokens, limit) -> None:
    model, tokenizer = tiny_model_and_tokenizer()
    rows = evaluate_model(
        model,
        tokenizer,
        list(FAMILIES),
        benchmark_dir=benchmark_dir,
        limit=limit,
        batch_size=64 if batch_tokens else 3,
        batch_tokens=batch_tokens,
        offline=True,
    )
    got = {r["task"]: r for r in rows}
    expected = _expected(benchmark_dir, limit)
    assert set(got) == set(expected)
    assert {f for f in got if "_field_" in f} == {
        "cpt_blimp_field_morphology",
        "cpt_blimp_field_semantics",
        "cpt_blimp_field_syntax",
        "cpt_blimp_field_syntax_semantics",  # "syntax/semantics" and "syntax_semantics" in one field
    }
    for task, value in expected.items():
        assert got[task]["metric"] == "acc" and got[task]["limit"] == limit
        assert got[task]["value"] == pytest.approx(value, abs=1e-12), task
        assert math.isfinite(got[task]["stderr"])
    # A group's stderr is that of an unweighted mean of independent member means.
    members = [r for t, r in got.items() if t.startswith("cpt_multiblimp_de_")]
    assert got["cpt_multiblimp_de"]["stderr"] == pytest.approx(
        math.sqrt(sum(r["stderr"] ** 2 for r in members)) / len(members)
    )


def test_family_without_files_names_the_missing_glob(tmp_path: Path) -> None:
    model, tokenizer = tiny_model_and_tokenizer()
    with pytest.raises(DataError, match=r"blimp/\*\.jsonl: no benchmark files for task 'cpt_blimp'"):
        evaluate_model(model, tokenizer, ["cpt_blimp"], benchmark_dir=tmp_path, offline=True)


def test_a_member_or_field_can_be_requested_alone(benchmark_dir: Path) -> None:
    model, tokenizer = tiny_model_and_tokenizer()
    tasks = ["cpt_blimp_adjunct_island", "cpt_blimp_field_syntax_semantics"]
    rows = evaluate_model(model, tokenizer, tasks, benchmark_dir=benchmark_dir, offline=True, batch_tokens=512)
    assert {r["task"] for r in rows} == {*tasks, "cpt_blimp_principle_A_c_command", "cpt_blimp_principle_A_case_2"}


@pytest.mark.parametrize("quiet", [True, False])
def test_quiet_evaluation_output(benchmark_dir: Path, capfd, caplog, quiet: bool) -> None:
    import lm_eval.api.task

    model, tokenizer = tiny_model_and_tokenizer()
    tqdm_before, level_before = lm_eval.api.task.tqdm, logging.getLogger("lm_eval").level
    with caplog.at_level(logging.INFO):
        evaluate_model(
            model, tokenizer, list(FAMILIES), benchmark_dir=benchmark_dir, offline=True, batch_tokens=512, quiet=quiet
        )
    out, err = capfd.readouterr()
    printed = out + err
    ours = [r for r in caplog.records if r.name == "cpt_experiments.eval.harness" and "acc" in r.getMessage()]
    lm_eval_lines = [r for r in caplog.records if r.name.startswith("lm_eval")]
    if quiet:
        assert "it/s" not in printed and "%|" not in printed, printed[-500:]
        assert printed.count("\n") <= 1, printed  # at most a stray line from a subprocess
        assert not lm_eval_lines
        assert sorted(r.getMessage().split(":")[0] for r in ours) == sorted(FAMILIES)  # one line per task
    else:  # the same evaluation without quiet shows what it silences
        assert "it/s" in printed or lm_eval_lines
    assert lm_eval.api.task.tqdm is tqdm_before and logging.getLogger("lm_eval").level == level_before
