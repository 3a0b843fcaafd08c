"""The offline benchmark files ``cpt-fetch`` writes under ``<data dir>/benchmarks/``, and where each comes from.

The files the offline lm-eval tasks read (``cpt_experiments/eval/tasks``), from the datasets the stock lm-eval tasks
name (or, for the Okapi German sets and the German word-order pairs, the pinned GitHub files the local copies were
made from), each record turned into a row in the schema of the local files (``../shared/data/README.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cpt_experiments.data.download import Item, Row, Source

GITHUB = "https://raw.githubusercontent.com"
OKAPI_ARC = f"{GITHUB}/laiviet/lm-evaluation-harness/5cf24ac499a265a4d9a44486dbf06a583265617c/datasets/m_ai2_arc"
OKAPI_MMLU = f"{GITHUB}/laiviet/lm-evaluation-harness/10cb5292748e882c22db7eed49a380089645c4c2/datasets/m_mmlu"
WORD_ORDER = f"{GITHUB}/jumelet/multiblimp/6ebca3d8a7e98dc4e7e8d4ae1746ad20fb20498d/word_order/pairs/tight"
BLIMP_PARADIGMS = """adjunct_island anaphor_gender_agreement anaphor_number_agreement animate_subject_passive
animate_subject_trans causative complex_NP_island coordinate_structure_constraint_complex_left_branch
coordinate_structure_constraint_object_extraction determiner_noun_agreement_1 determiner_noun_agreement_2
determiner_noun_agreement_irregular_1 determiner_noun_agreement_irregular_2 determiner_noun_agreement_with_adj_2
determiner_noun_agreement_with_adj_irregular_1 determiner_noun_agreement_with_adj_irregular_2
determiner_noun_agreement_with_adjective_1 distractor_agreement_relational_noun distractor_agreement_relative_clause
drop_argument ellipsis_n_bar_1 ellipsis_n_bar_2 existential_there_object_raising existential_there_quantifiers_1
existential_there_quantifiers_2 existential_there_subject_raising expletive_it_object_raising inchoative
intransitive irregular_past_participle_adjectives irregular_past_participle_verbs
irregular_plural_subject_verb_agreement_1 irregular_plural_subject_verb_agreement_2 left_branch_island_echo_question
left_branch_island_simple_question matrix_question_npi_licensor_present npi_present_1 npi_present_2
only_npi_licensor_present only_npi_scope passive_1 passive_2 principle_A_c_command principle_A_case_1
principle_A_case_2 principle_A_domain_1 principle_A_domain_2 principle_A_domain_3 principle_A_reconstruction
regular_plural_subject_verb_agreement_1 regular_plural_subject_verb_agreement_2 sentential_negation_npi_licensor_present
sentential_negation_npi_scope sentential_subject_island superlative_quantifiers_1 superlative_quantifiers_2
tough_vs_raising_1 tough_vs_raising_2 transitive wh_island wh_questions_object_gap wh_questions_subject_gap
wh_questions_subject_gap_long_distance wh_vs_that_no_gap wh_vs_that_no_gap_long_distance wh_vs_that_with_gap
wh_vs_that_with_gap_long_distance""".split()  # the 67 configs of nyu-mll/blimp (= lm-eval's blimp_* tasks)


# --- rows: (index, upstream record) -> a row in the local files' schema; each says where upstream differs -------


def _keep(*fields: str) -> Row:
    """The record's ``fields`` unchanged (a missing one as null): the upstream schema is already the local one."""
    return lambda i, r: {f: r.get(f) for f in fields}


def _wikitext(i: int, r: Mapping[str, Any]) -> dict[str, Any]:
    # The local file also names each article: its first line is the ` = Title = ` heading.
    page = r["page"]
    return {"title": page.lstrip().split("\n", 1)[0].strip(" ="), "page": page}


def _hellaswag(i: int, r: Mapping[str, Any]) -> dict[str, Any]:
    # Rowan/hellaswag stores the label as a string; the local file (and cpt_hellaswag's doc_to_target) use an int.
    keys = ("ind", "activity_label", "ctx_a", "ctx_b", "endings")
    return {**{k: r.get(k) for k in keys}, "label": int(r["label"])}


def _okapi(options: str) -> Row:
    # Okapi's JSON arrays omit option_e where ARC has four options; the local files write it as null.
    return lambda i, r: {
        "id": r.get("id"),
        "instruction": r.get("instruction"),
        **{f"option_{o}": r.get(f"option_{o}") for o in options},
        "answer": r.get("answer"),
    }


def _blimp(i: int, r: Mapping[str, Any]) -> dict[str, Any]:
    # nyu-mll/blimp has an int `pair_id`; the original files (and ours) a string `pairID`.
    row = {k: v for k, v in r.items() if k != "pair_id"}
    row.setdefault("pairID", str(r.get("pair_id")))
    return row


def _word_order(uid: str, relation: str) -> Row:
    # Conversion of the MultiBLiMP word-order CSV to BLiMP's schema, as documented for the local files.
    return lambda i, r: {
        "sentence_good": r["sen_str"],
        "sentence_bad": r["swapped_sen_str"],
        "field": "syntax",
        "linguistics_term": "word_order",
        "UID": uid,
        "phenomenon": f"word_order/{relation}",
        "lang": "deu",
        "simple_LM_method": True,
        "one_prefix_method": False,
        "two_prefix_method": False,
        "lexically_identical": True,
        "pairID": str(i),
        "leaf_rule": r.get("leaf_rule"),
    }


def benchmark_items() -> list[Item]:
    """The files of ``<data dir>/benchmarks`` that the offline tasks read, with their sources."""
    b = "benchmarks/"
    items = [
        Item(b + "lambada_openai_test.jsonl", Source("EleutherAI/lambada_openai", "default", "test"), _keep("text")),
        Item(
            b + "wikitext2_raw_test.jsonl",
            Source("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1", "test"),
            _wikitext,
        ),
        Item(b + "hellaswag_validation.jsonl", Source("Rowan/hellaswag", None, "validation"), _hellaswag),
        Item(
            b + "piqa_validation.jsonl",
            Source("baber/piqa", None, "validation"),
            _keep("goal", "sol1", "sol2", "label"),
        ),
        Item(
            b + "arc_easy_test.jsonl",
            Source("allenai/ai2_arc", "ARC-Easy", "test"),
            _keep("id", "question", "choices", "answerKey"),
        ),
    ]
    for split in ("test", "validation"):
        url = f"{OKAPI_ARC}/de_easy_{split}.json"
        items.append(Item(f"{b}arc_easy_de_{split}.jsonl", Source("json", url=url), _okapi("abcde")))
    for split in ("val", "dev"):
        url = f"{OKAPI_MMLU}/de_{split}.json"
        items.append(Item(f"{b}mmlu_de_{split}.jsonl", Source("json", url=url), _okapi("abcd")))
    items += [Item(f"{b}blimp/{p}.jsonl", Source("nyu-mll/blimp", p, "train"), _blimp) for p in BLIMP_PARADIGMS]
    for relation in ("nsubj", "obj"):
        uid = f"word_order_{relation}"
        url = f"{WORD_ORDER}/{relation}/German.csv"
        items.append(Item(f"{b}multiblimp_de/{uid}.jsonl", Source("csv", url=url), _word_order(uid, relation)))
    return items
