"""The hub stand-in corpora ``cpt-fetch`` writes: one Hub corpus config each, landing at ``hub/<name>.jsonl``.

Each Hub corpus config (``conf/corpus/{pile,slimpajama,fineweb2_de}_hub.yaml``) becomes one item: its records as
rows with ``text`` and, where the corpus has one, ``id``; ``corpora=fetched`` (``conf/corpus/*_fetched.yaml``)
reads the files back as local corpora.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.download import Item, Row, Source
from cpt_experiments.errors import DataError
from cpt_experiments.files import CONF_DIR

HUB_CORPORA = ("pile_hub", "slimpajama_hub", "fineweb2_de_hub")  # conf/corpus/<name>.yaml, one per role


def _corpus_row(spec: CorpusSpec) -> Row:
    """A record of the corpus as a row of its fetched file (``text``, and ``id`` if it has one); None skips it."""

    def row(i: int, r: Mapping[str, Any]) -> dict[str, Any] | None:
        text = r.get(spec.text_field)
        if not isinstance(text, str) or not text.strip():
            return None
        return {"id": str(r[spec.id_field]), "text": text} if spec.id_field else {"text": text}

    return row


def fetched_file(spec: CorpusSpec) -> str:
    """Where a Hub corpus lands, relative to the data dir (``conf/corpus/*_fetched.yaml`` read it there)."""
    return f"hub/{spec.name}.jsonl"


def corpus_items(names: list[str] | tuple[str, ...] = HUB_CORPORA, conf_dir: Path = CONF_DIR) -> list[Item]:
    """One item per Hub corpus config ``conf/corpus/<name>.yaml``."""
    from omegaconf import OmegaConf

    items = []
    for name in names:
        path = conf_dir / "corpus" / f"{name}.yaml"
        if not path.is_file():
            raise DataError(f"{path}: no such corpus config (--corpus takes names from {conf_dir / 'corpus'})")
        spec = CorpusSpec.from_config(OmegaConf.load(path), key=f"corpus.{name}")
        if spec.source != "hub" or spec.hub is None:
            raise DataError(f"{path}: corpus {name!r} is not a hub corpus; nothing to fetch")
        h = spec.hub
        source = Source(h.path, h.name, h.split, h.revision)
        items.append(Item(fetched_file(spec), source, _corpus_row(spec), corpus=True))
    return items
