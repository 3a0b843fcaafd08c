"""lm-eval plumbing with a tiny random GPT-NeoX: rolling log-likelihood against a direct
computation, held-out task rendering, bits per byte, row format, errors."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest
import torch

from cpt_experiments.errors import ConfigError
from cpt_experiments.eval import harness
from cpt_experiments.eval.domain_loss import bits_per_byte
from cpt_experiments.eval.harness import evaluate_checkpoint, evaluate_model, results_to_rows
from cpt_experiments.eval.heldout import heldout_task_dir

CONTEXT = 64  # the tiny model's max_position_embeddings: long documents need several windows

PARAGRAPHS = [
    "The river rises in the northern hills and flows south through a wide valley. Farmers "
    "have grown wheat and barley along its banks for centuries, and the old mill still stands.",
    "In 1854 the town built a stone bridge across the river. The bridge was rebuilt after the "
    "flood of 1902, when the water rose higher than anyone could remember.",
    "Die Abgeordneten diskutierten am Donnerstag über den Haushalt. Der Minister sagte, die "
    "Regierung werde die Ausgaben für Bildung und Forschung im nächsten Jahr erhöhen.",
    "Question: Which gas do plants take in from the air? Answer: carbon dioxide. Plants use "
    "sunlight to turn water and carbon dioxide into sugar and oxygen.",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@functools.lru_cache(maxsize=1)
def tiny_model_and_tokenizer():
    """A byte-level BPE (vocab 400, eos ``<|endoftext|>``) and a random 2-layer GPT-NeoX."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(PARAGRAPHS * 5, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=len(tokenizer),
        max_position_embeddings=CONTEXT,
    )
    model = GPTNeoXForCausalLM(config).eval()
    return model, tokenizer


def direct_loglikelihood(model, context: list[int], targets: list[int], width: int) -> float:
    """Sum of log p(target token) in nats, scored as lm-eval's windows do: targets in blocks of
    ``width`` tokens, each block predicted from the ``width`` tokens (of context + targets)
    that end just before the block's last target."""
    full = context + targets
    total, start = 0.0, 0
    while start < len(targets):
        end = min(start + width, len(targets))
        stop = len(context) + end  # one past the block's last target in `full`
        inputs = full[max(0, stop - 1 - width) : stop - 1]
        with torch.no_grad():
            logits = model(torch.tensor([inputs])).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)[-(end - start) :]
        total += logp.gather(1, torch.tensor(targets[start:end])[:, None]).sum().item()
        start = end
    return total


def direct_rolling_loglikelihood(model, tokenizer, text: str, width: int) -> float:
    """Rolling log-likelihood of ``text``: the first token is conditioned on EOS."""
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    return direct_loglikelihood(model, [tokenizer.eos_token_id], tokens, width)


def test_rolling_loglikelihood_matches_direct_computation(tmp_path: Path, monkeypatch) -> None:
    model, tokenizer = tiny_model_and_tokenizer()
    short = PARAGRAPHS[0].split(". ")[0] + "."
    long = " ".join(PARAGRAPHS)
    n_short = len(tokenizer(short, add_special_tokens=False)["input_ids"])
    n_long = len(tokenizer(long, add_special_tokens=False)["input_ids"])
    assert n_short < CONTEXT and n_long > 2 * CONTEXT and n_long % CONTEXT != 0

    # lm-eval resolves relative data_files against the cwd: evaluate from somewhere else.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    names = heldout_task_dir({"short": [short], "long": [long]}, tmp_path / "tasks")
    assert names == ["cpt_heldout_short", "cpt_heldout_long"]
    rows = evaluate_model(model, tokenizer, names, extra_include_dirs=[tmp_path / "tasks"], offline=True, batch_size=3)
    by_key = {(r["task"], r["metric"]): r for r in rows}
    assert len(rows) == 6
    for domain, text in (("short", short), ("long", long)):
        n_bytes = len(text.encode("utf-8"))
        expected_ll = direct_rolling_loglikelihood(model, tokenizer, text, CONTEXT)
        bpb = by_key[(f"cpt_heldout_{domain}", "bits_per_byte")]["value"]
        assert -bpb * math.log(2) * n_bytes == pytest.approx(expected_ll, abs=1e-4)
        assert bpb == pytest.approx(bits_per_byte(-expected_ll, n_bytes), rel=1e-6)
        byte_ppl = by_key[(f"cpt_heldout_{domain}", "byte_perplexity")]["value"]
        assert byte_ppl == pytest.approx(2**bpb, rel=1e-9)
        word_ppl = by_key[(f"cpt_heldout_{domain}", "word_perplexity")]["value"]
        assert word_ppl == pytest.approx(math.exp(-expected_ll / len(text.split())), rel=1e-6)
    row = by_key[("cpt_heldout_long", "bits_per_byte")]
    assert row["task_version"] == 1.0 and row["num_fewshot"] == 0 and row["limit"] is None
    assert math.isnan(row["stderr"])  # lm-eval reports "N/A" for the rolling metrics


LONG_TARGET_TASK = """\
task: cpt_test_long_target
dataset_path: json
dataset_kwargs:
  data_files:
    test: DATA
output_type: loglikelihood
test_split: test
doc_to_text: "{{context}}"
doc_to_target: "{{target}}"
process_results: !function long_target_utils.process_results
metric_list:
  - metric: loglikelihood
    aggregation: mean
    higher_is_better: true
metadata:
  version: 0.0
"""


def test_continuation_longer_than_context_is_scored_in_windows(tmp_path: Path) -> None:
    # Stock HFLM asserts on such requests; ours splits them like rolling windows.
    model, tokenizer = tiny_model_and_tokenizer()
    context, target = "Title: The river", " " + " ".join(PARAGRAPHS[:2])
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"context": context, "target": target}) + "\n")
    (tmp_path / "long.yaml").write_text(LONG_TARGET_TASK.replace("DATA", json.dumps(str(data))))
    # The summed log-likelihood itself (perplexity of ~1000 nats would overflow exp()).
    (tmp_path / "long_target_utils.py").write_text(
        "def process_results(doc, results):\n    return {'loglikelihood': results[0][0]}\n"
    )
    rows = evaluate_model(model, tokenizer, ["cpt_test_long_target"], extra_include_dirs=[tmp_path], offline=True)
    whole = tokenizer(context + target, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    assert whole[: len(ctx)] == ctx and len(whole) - len(ctx) > 2 * CONTEXT
    expected = direct_loglikelihood(model, ctx, whole[len(ctx) :], CONTEXT)
    (row,) = rows
    assert row["metric"] == "loglikelihood"
    assert row["value"] == pytest.approx(expected, abs=1e-4)


def test_heldout_yaml_uses_absolute_data_path(tmp_path: Path) -> None:
    heldout_task_dir({"de": ["Guten Tag.\nZweite Zeile."]}, tmp_path)
    yaml_text = (tmp_path / "cpt_heldout_de.yaml").read_text()
    assert f"test: {json.dumps(str(tmp_path.resolve() / 'cpt_heldout_de.jsonl'))}" in yaml_text
    lines = (tmp_path / "cpt_heldout_de.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"text": "Guten Tag.\nZweite Zeile."}]


@pytest.mark.parametrize(
    "domains, key",
    [
        ({}, "heldout.domains"),
        ({"a-b": ["x"]}, "heldout.domains"),
        ({"a": []}, "heldout.domains.a"),
        ({"a": ["ok", "  "]}, "heldout.domains.a"),
    ],
)
def test_heldout_rejects_bad_domains_and_writes_nothing(tmp_path: Path, domains, key) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: ") as err:
        heldout_task_dir(domains, tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_bits_per_byte_exact_values() -> None:
    assert bits_per_byte(8 * math.log(2), 8) == pytest.approx(1.0, rel=1e-15)
    assert bits_per_byte(10 * math.log(256), 10) == pytest.approx(8.0, rel=1e-15)
    assert bits_per_byte(0.0, 3) == 0.0
    with pytest.raises(ValueError, match="total_bytes"):
        bits_per_byte(1.0, 0)


def test_unknown_task_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    model, tokenizer = tiny_model_and_tokenizer()
    names = heldout_task_dir({"x": ["some text"]}, tmp_path)
    with pytest.raises(ConfigError, match=r"^eval_suite\.tasks: unknown lm-eval task 'cpt_no_such_task'") as err:
        evaluate_model(model, tokenizer, [*names, "cpt_no_such_task"], extra_include_dirs=[tmp_path], offline=True)
    assert "\n" not in str(err.value)


def test_no_tasks_is_a_config_error() -> None:
    model, tokenizer = tiny_model_and_tokenizer()
    with pytest.raises(ConfigError, match=r"^eval_suite\.tasks: no tasks"):
        evaluate_model(model, tokenizer, [], offline=True)


def test_results_to_rows_exact() -> None:
    results = {
        "results": {
            "t_b": {
                "alias": "t_b",
                "acc,none": 0.5,
                "acc_stderr,none": 0.25,
                "bits_per_byte,none": 1.5,
                "bits_per_byte_stderr,none": "N/A",
            },
            "t_a": {"alias": "t_a", "exact_match,strict": 1.0, "exact_match_stderr,strict": 0.0},
        },
        "versions": {"t_a": 2.0, "t_b": 1.0},
        "n-shot": {"t_a": 5, "t_b": 0},
    }
    rows = results_to_rows(results, limit=10)
    assert [(r["task"], r["metric"], r["value"], r["num_fewshot"], r["task_version"]) for r in rows] == [
        ("t_a", "exact_match,strict", 1.0, 5, 2.0),
        ("t_b", "acc", 0.5, 0, 1.0),
        ("t_b", "bits_per_byte", 1.5, 0, 1.0),
    ]
    assert [r["stderr"] for r in rows[:2]] == [0.0, 0.25] and math.isnan(rows[2]["stderr"])
    assert all(tuple(r) == harness.ROW_KEYS and r["limit"] == 10 for r in rows)


def test_evaluate_checkpoint_loads_local_export_and_matches_in_memory(tmp_path: Path) -> None:
    model, tokenizer = tiny_model_and_tokenizer()
    export = tmp_path / "stage_1" / "hf"
    model.save_pretrained(export)
    tokenizer.save_pretrained(export)
    names = heldout_task_dir({"a": [PARAGRAPHS[1], PARAGRAPHS[2]]}, tmp_path / "tasks")
    kwargs = dict(extra_include_dirs=[tmp_path / "tasks"], offline=True)
    from_disk = evaluate_checkpoint(export, names, **kwargs)
    in_memory = evaluate_model(model, tokenizer, names, **kwargs)
    assert [r["metric"] for r in from_disk] == ["bits_per_byte", "byte_perplexity", "word_perplexity"]
    for a, b in zip(from_disk, in_memory, strict=True):
        assert a["value"] == pytest.approx(b["value"], rel=1e-6)


def test_evaluate_checkpoint_missing_dir_names_it(tmp_path: Path) -> None:
    from cpt_experiments.errors import DataError

    with pytest.raises(DataError, match="no config.json"):
        evaluate_checkpoint(tmp_path / "nope", ["cpt_piqa"])


def test_model_training_mode_is_restored(tmp_path: Path) -> None:
    model, tokenizer = tiny_model_and_tokenizer()
    names = heldout_task_dir({"a": [PARAGRAPHS[3]]}, tmp_path)
    model.train()
    try:
        evaluate_model(model, tokenizer, names, extra_include_dirs=[tmp_path], offline=True)
        assert model.training
    finally:
        model.eval()
