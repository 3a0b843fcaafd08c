"""Version slices of one corpus: disjoint, covering the train split, deterministic, sharing validation."""

from __future__ import annotations

import pytest

from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.splits import split_documents
from cpt_experiments.errors import ConfigError


def _spec(**kw) -> CorpusSpec:
    base = {"name": "wiki", "source": "local", "path": "A_en_wikipedia.jsonl", "id_field": "id"}
    return CorpusSpec.from_config({**base, **kw})


def test_slices_partition_the_train_split(data_dir):
    whole = [k for k, _ in split_documents(_spec(), data_dir, "train")]
    parts = [
        [k for k, _ in split_documents(_spec(slice_index=i, slice_count=4), data_dir, "train")] for i in (1, 2, 3, 4)
    ]
    assert sorted(k for p in parts for k in p) == sorted(whole)  # disjoint and covering
    assert all(len(p) > len(whole) // 8 for p in parts)  # equal buckets in expectation
    again = [k for k, _ in split_documents(_spec(slice_index=2, slice_count=4), data_dir, "train")]
    assert again == parts[1]  # deterministic


def test_slices_share_validation_and_its_cache_hash(data_dir):
    a, b = _spec(slice_index=1, slice_count=4), _spec(slice_index=3, slice_count=4)
    assert list(split_documents(a, data_dir, "validation")) == list(split_documents(b, data_dir, "validation"))
    assert a.spec_hash(exclude=("max_tokens",)) == b.spec_hash(exclude=("max_tokens",))
    assert a.spec_hash(exclude=("max_validation_tokens",)) != b.spec_hash(exclude=("max_validation_tokens",))


def test_unequal_fractions(data_dir):
    small = [
        k for k, _ in split_documents(_spec(slice_index=1, slice_count=2, slice_fractions=[1, 3]), data_dir, "train")
    ]
    large = [
        k for k, _ in split_documents(_spec(slice_index=2, slice_count=2, slice_fractions=[1, 3]), data_dir, "train")
    ]
    assert len(small) < len(large) and not set(small) & set(large)


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"slice_index": 5, "slice_count": 4}, "corpus.slice_index"),
        ({"slice_index": 1}, "corpus.slice_count"),
        ({"slice_index": 1, "slice_count": 2, "slice_fractions": [1.0]}, "corpus.slice_fractions"),
        ({"slice_index": 1, "slice_count": 2, "slice_fractions": [1.0, -1.0]}, "corpus.slice_fractions"),
        ({"slice_fractions": [1.0, 1.0]}, "corpus.slice_fractions"),
    ],
)
def test_bad_slice_config_names_the_key(kw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _spec(**kw)
