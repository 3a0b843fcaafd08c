"""The data schemas: a corpus (``conf/corpus/*.yaml``, with its hub source) and the tokenizer (``conf/tokenizer``).

``TrainRoot`` keeps ``corpora`` and ``tokenizer`` as the composed mappings, because the run's config hash and
its snapshot hash them as composed (keys a YAML leaves out stay out: a schema default there would change every
recorded config hash). ``TrainRoot.__post_init__`` types them here once (``config.typed``: unknown keys, types,
ranges); ``data.corpus.CorpusSpec`` and ``data.tokenizer.get_tokenizer`` take the typed objects and check only
what a schema cannot express (a local corpus needs a path, a bpe tokenizer its trainer settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from omegaconf import MISSING

# OmegaConf reads these annotations at runtime, so they use typing's List/Optional.


@dataclass
class HubConfig:
    """A Hugging Face Hub dataset (``data.corpus.HubSource``)."""

    path: str = MISSING  # dataset id, e.g. monology/pile-uncopyrighted (or a folder laid out like a hub repo)
    name: Optional[str] = None  # dataset config name, e.g. deu_Latn; null: the default config
    split: str = "train"  # the hub split read; our train/validation split is made from it by document hash
    streaming: bool = True  # stream records instead of converting the whole split to Arrow first
    revision: Optional[str] = None  # git revision of the dataset repo; pin it, or the cache key cannot see changes


@dataclass
class CorpusConfig:
    """One corpus (``data.corpus.CorpusSpec`` documents each field); the defaults here are the only ones."""

    name: str = MISSING  # short identifier; names cache folders
    source: str = MISSING  # local | hub
    lang: Optional[str] = None  # language code (informational; paper 1's shift strength compares it)
    path: Optional[str] = None  # local: file path, absolute or relative to data_dir (else paths.data_dir)
    data_dir: Optional[str] = None  # local: this corpus's own folder (a location, not content: not hashed)
    format: str = "jsonl"  # local: jsonl | text | parquet
    hub: Optional[HubConfig] = None  # hub source settings
    text_field: str = "text"  # record field holding the document text
    id_field: Optional[str] = None  # record field with a stable document id; null: the text identifies it
    max_documents: Optional[int] = None  # the first N non-empty documents (before splitting); null: all
    max_tokens: Optional[int] = None  # train-split tokens, cut exactly; null: all
    max_validation_tokens: Optional[int] = 200_000  # validation-split tokens; null: all
    validation_fraction: float = 0.05  # expected fraction of documents in the validation split, [0, 1)
    split_salt: str = "cpt-split-v1"  # salt of the split hash; another salt draws another validation set
    slice_index: Optional[int] = None  # version slice: train on bucket slice_index (1-based) of slice_count
    slice_count: Optional[int] = None  # disjoint train buckets (set together with slice_index)
    slice_fractions: Optional[List[float]] = None  # relative bucket sizes, one per slice; null: equal buckets


@dataclass
class TokenizerConfig:
    """The run's tokenizer (``data.tokenizer.get_tokenizer``): trained (``bpe``) or ``pretrained``.

    No trainer defaults here: ``conf/tokenizer/bpe.yaml`` is the one place with values, and a bpe config
    without one of them is refused, naming the key.
    """

    kind: str = MISSING  # bpe | pretrained
    vocab_size: Optional[int] = None  # bpe: ids, at least 256 bytes + EOS
    min_frequency: Optional[int] = None  # bpe: a merge needs this many occurrences
    train_corpus: Optional[str] = None  # bpe: the corpus role whose train split trains it
    train_max_chars: Optional[int] = None  # bpe: characters of train-split text read
    name_or_path: Optional[str] = None  # pretrained: a hub name or a local folder
