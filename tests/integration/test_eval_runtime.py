"""``eval.runtime``: compiling each prompt template once changes no score, and everything is restored."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_eval_harness import tiny_model_and_tokenizer

from cpt_experiments.eval.harness import evaluate_model
from cpt_experiments.eval.runtime import lm_eval_runtime

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_cached_templates_render_the_same_prompts(benchmark_dir: Path) -> None:
    model, tokenizer = tiny_model_and_tokenizer()
    # Jinja prompts of several shapes: fields, expressions, a list literal (doc_to_choice), the empty context.
    tasks = ["cpt_arc_easy", "cpt_lambada_openai", "cpt_mmlu_de", "cpt_multiblimp_de"]
    kwargs = dict(benchmark_dir=benchmark_dir, limit=3, offline=True, num_fewshot=1)
    cached = evaluate_model(model, tokenizer, tasks, cache_templates=True, **kwargs)
    compiled_each_time = evaluate_model(model, tokenizer, tasks, cache_templates=False, **kwargs)
    assert len(cached) > len(tasks)
    assert cached == compiled_each_time


def test_runtime_restores_lm_eval() -> None:
    from lm_eval import utils

    original = utils.apply_template
    with lm_eval_runtime(quiet=True):
        assert utils.apply_template is not original
        assert utils.apply_template("{{a}}-{{b}}", {"a": 1, "b": 2}) == "1-2"
    assert utils.apply_template is original
    with pytest.raises(RuntimeError), lm_eval_runtime(quiet=True):
        raise RuntimeError("restored on errors too")
    assert utils.apply_template is original
