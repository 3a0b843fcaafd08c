"""Document hooks for the offline task YAMLs next to this file (``!function utils.<name>``).

They reproduce the preprocessing of lm-eval's stock hellaswag, okapi ARC and wikitext tasks so
that the local copies score the same prompts. lm-eval imports this file by path from the
rendered task folder, so it must not import anything from ``cpt_experiments``.
"""

from __future__ import annotations

import re

import datasets

_BRACKETED = re.compile(r"\[.*?\]")


def _clean(text: str) -> str:
    # WikiHow items carry "[title]"/"[step]" markers; the stock tasks strip them this way.
    text = text.strip().replace(" [title]", ". ")
    return _BRACKETED.sub("", text).replace("  ", " ")


def hellaswag_process_docs(dataset: datasets.Dataset) -> datasets.Dataset:
    """Add ``query`` (activity label + context), ``choices`` (4 endings) and ``gold``."""

    def one(doc: dict) -> dict:
        context = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
        return {
            "query": _clean(doc["activity_label"] + ": " + context),
            "choices": [_clean(e) for e in doc["endings"]],
            "gold": int(doc["label"]),
        }

    return dataset.map(one)


def okapi_arc_process_docs(dataset: datasets.Dataset) -> datasets.Dataset:
    """Okapi ARC rows (``instruction``, ``option_a``..``option_e``, letter ``answer``) to MC docs."""
    letters = ["A", "B", "C", "D", "E"]

    def one(doc: dict) -> dict:
        options = [doc.get(f"option_{c.lower()}") for c in letters]
        return {
            "query": "Question: " + _clean(doc["instruction"]) + "\nAnswer:",
            "choices": [_clean(o) for o in options if o],
            "gold": letters.index(doc["answer"]),
        }

    return dataset.map(one)


# (pattern, replacement) pairs undoing WikiText's tokenization, applied in order.
_WIKITEXT_LITERAL = [
    ("s '", "s'"),
    (" @-@ ", "-"),
    (" @,@ ", ","),
    (" @.@ ", "."),
    (" : ", ": "),
    (" ; ", "; "),
    (" . ", ". "),
    (" ! ", "! "),
    (" ? ", "? "),
    (" , ", ", "),
]
_WIKITEXT_BRACKETS = [
    (re.compile(r"\(\s*([^\)]*?)\s*\)"), r"(\1)"),
    (re.compile(r"\[\s*([^\]]*?)\s*\]"), r"[\1]"),
    (re.compile(r"{\s*([^}]*?)\s*}"), r"{\1}"),
    (re.compile(r"\"\s*([^\"]*?)\s*\""), r'"\1"'),
    (re.compile(r"'\s*([^']*?)\s*'"), r"'\1'"),
]
_WIKITEXT_TAIL = [
    ("= = = =", "===="),
    ("= = =", "==="),
    ("= =", "=="),
    (" \N{DEGREE SIGN} ", "\N{DEGREE SIGN}"),
    (" \n", "\n"),
    ("\n ", "\n"),
    (" N ", " 1 "),
    (" 's", "'s"),
]


def wikitext_detokenizer(doc: dict) -> str:
    """The article ``page`` with WikiText tokenization undone (as lm-eval's stock task does)."""
    text = doc["page"]
    text = text.replace(_WIKITEXT_LITERAL[0][0], _WIKITEXT_LITERAL[0][1])
    text = re.sub(r"/' [0-9]/", r"/'[0-9]/", text)
    for old, new in _WIKITEXT_LITERAL[1:]:
        text = text.replace(old, new)
    for pattern, repl in _WIKITEXT_BRACKETS:
        text = pattern.sub(repl, text)
    for old, new in _WIKITEXT_TAIL:
        text = text.replace(old, new)
    return text


def wikitext_process_results(doc: dict, results: list[float]) -> dict:
    """Per-document (log-likelihood in nats, count) pairs; counts are taken on the raw page."""
    (loglikelihood,) = results
    words = len(re.split(r"\s+", doc["page"]))
    n_bytes = len(doc["page"].encode("utf-8"))
    return {
        "word_perplexity": (loglikelihood, words),
        "byte_perplexity": (loglikelihood, n_bytes),
        "bits_per_byte": (loglikelihood, n_bytes),
    }
