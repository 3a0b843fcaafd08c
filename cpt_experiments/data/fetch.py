"""``python -m cpt_experiments.data.fetch``: download the hub stand-in corpora and the offline benchmark files.

    python -m cpt_experiments.data.fetch --data-dir data                  # corpora (4M words each) + benchmarks
    python -m cpt_experiments.data.fetch --data-dir data --only corpora --max-words 500000
    python -m cpt_experiments.data.fetch --data-dir data --list           # what would be fetched, from where

Corpora: each Hub corpus config (``conf/corpus/{pile,slimpajama,fineweb2_de}_hub.yaml``) is streamed through
the loader of :mod:`cpt_experiments.data.loader` and its first documents, up to ``--max-words`` /
``--max-documents``, are written to ``<data dir>/hub/<corpus name>.jsonl`` (fields ``text`` and, where the
corpus has one, ``id``); ``corpora=fetched`` (``conf/corpus/*_fetched.yaml``) reads them. Benchmarks: the files
the offline lm-eval tasks read (``cpt_experiments/eval/tasks``), from the datasets the stock lm-eval tasks name
(or, for the Okapi German sets and the German word-order pairs, the pinned GitHub files the local copies were
made from), in the local files' schema, under ``<data dir>/benchmarks/``.

Each file is written atomically (a killed fetch leaves only a ``.*.tmp-*`` file) and recorded in
``<data dir>/fetch_manifest.json`` (source, resolved revision, caps, rows, bytes, sha256); a rerun skips a file
whose entry matches its request and its bytes. ``--mirror DIR`` reads every source from local copies laid out as
``DIR/<hub id>`` and ``DIR/<host>/<url path>`` (an offline cluster; the tests).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import fnmatch
import hashlib
import json
import logging
import os
import sys
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cpt_experiments.atomic import atomic_path, atomic_write_text
from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.loader import hub_revision, is_hub_id, open_dataset
from cpt_experiments.errors import CPTError, DataError
from cpt_experiments.files import CONF_DIR, sha256_file

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"  # the embedded sample: read-only package data
MANIFEST = "fetch_manifest.json"
HUB_CORPORA = ("pile_hub", "slimpajama_hub", "fineweb2_de_hub")  # conf/corpus/<name>.yaml, one per role
DEFAULT_MAX_WORDS = 4_000_000  # per corpus: ~5M tokens of a 4096-token BPE, above scale=cpu's 3.1M-token stage
URL_TIMEOUT_S = 10.0

Row = Callable[[int, Mapping[str, Any]], "dict[str, Any] | None"]  # (index, record) -> JSON row or None (skip)


@dataclasses.dataclass(frozen=True)
class Source:
    """A dataset for ``datasets.load_dataset``: a Hub id (``path``, ``name``, ``split``, ``revision``) or a
    builder (``json``/``csv``) reading ``url``."""

    path: str
    name: str | None = None
    split: str = "train"
    revision: str | None = None
    url: str | None = None

    def label(self) -> str:
        if self.url:
            return self.url
        return f"hub:{self.path}" + (f"/{self.name}" if self.name else "") + f" [{self.split}]"

    def mirrored(self, mirror: Path) -> Source:
        """The same source read from a local copy under ``mirror`` (``<hub id>/`` or ``<host>/<url path>``)."""
        if self.url:
            u = urlparse(self.url)
            local = mirror / u.netloc / u.path.lstrip("/")
            return dataclasses.replace(self, url=str(local))
        return dataclasses.replace(self, path=str(mirror / self.path), revision=None)


@dataclasses.dataclass(frozen=True)
class Item:
    """One output file: where it goes (relative to the data dir), where it comes from, how a record becomes a row."""

    file: str
    source: Source
    row: Row
    corpus: bool = False  # corpora are capped by --max-documents / --max-words; benchmarks are fetched whole


# --- rows: records in the schema of the local files (../shared/data/README.md) --------------------------------


def _keep(*fields: str) -> Row:
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


def _corpus_row(spec: CorpusSpec) -> Row:
    def row(i: int, r: Mapping[str, Any]) -> dict[str, Any] | None:
        text = r.get(spec.text_field)
        if not isinstance(text, str) or not text.strip():
            return None
        return {"id": str(r[spec.id_field]), "text": text} if spec.id_field else {"text": text}

    return row


# --- what to fetch -----------------------------------------------------------------------------------------------

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


# --- fetching ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Caps:
    """Per-corpus caps: the first documents in stream order until either is reached (None = no cap)."""

    max_documents: int | None = None
    max_words: int | None = DEFAULT_MAX_WORDS  # whitespace-separated words, as counted in the data README


def _request(item: Item, caps: Caps) -> dict[str, Any]:
    """What a manifest entry must match for the file to be reused: the source and, for corpora, the caps."""
    return {"source": dataclasses.asdict(item.source), "caps": dataclasses.asdict(caps) if item.corpus else None}


def load_manifest(data_dir: Path) -> dict[str, Any]:
    """``fetch_manifest.json`` of ``data_dir`` (empty if absent); DataError naming the file if unreadable."""
    path = data_dir / MANIFEST
    if not path.exists():
        return {"version": 1, "files": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise DataError(f"{path}: not a fetch manifest; delete it to fetch every file again")
    return manifest


def up_to_date(data_dir: Path, item: Item, caps: Caps, manifest: Mapping[str, Any]) -> bool:
    """True if the file exists with the bytes its manifest entry records, for the same request."""
    entry = manifest["files"].get(item.file)
    path = data_dir / item.file
    if not entry or entry.get("request") != _request(item, caps) or not path.is_file():
        return False
    return path.stat().st_size == entry.get("bytes") and sha256_file(path) == entry.get("sha256")


def check_reachable(source: Source) -> str | None:
    """Fail in seconds, with the fix, when a remote source cannot be reached; the Hub revision if it is a Hub id."""
    import datasets

    remote = bool(source.url and urlparse(source.url).scheme in ("http", "https")) or is_hub_id(source.path)
    if not remote:
        return None
    if datasets.config.HF_HUB_OFFLINE:
        raise DataError(
            f"{source.label()}: fetching needs the network, but HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set; "
            "run `env -u HF_HUB_OFFLINE -u HF_DATASETS_OFFLINE python -m cpt_experiments.data.fetch ...` where "
            "the Hub is reachable, or read local copies with --mirror DIR"
        )
    if not source.url:
        return hub_revision(source.path, source.revision)
    try:  # one request, no retries: `datasets` would retry and then report a missing file
        urllib.request.urlopen(urllib.request.Request(source.url, method="HEAD"), timeout=URL_TIMEOUT_S).close()
    except Exception as exc:
        host = urlparse(source.url).netloc
        raise DataError(
            f"{source.url}: cannot reach {host} ({' '.join(str(exc).split())[:200]}); fetch where it is reachable "
            "and copy the data folder, or read local copies with --mirror DIR"
        ) from None
    return None


def fetch_item(item: Item, data_dir: Path, caps: Caps, mirror: Path | None, progress: bool) -> dict[str, Any]:
    """Write one file atomically and return its manifest entry."""
    from tqdm.auto import tqdm

    source = item.source.mirrored(mirror) if mirror else item.source
    revision = check_reachable(source)
    records = open_dataset(
        source.path, source.name, split=source.split, streaming=True, revision=source.revision, data_files=source.url
    )
    caps = caps if item.corpus else Caps(None, None)  # benchmarks are fetched whole
    unit, total = ("word", caps.max_words) if caps.max_words else ("row", caps.max_documents)
    rows = words = 0
    digest = hashlib.sha256()
    with (
        atomic_path(data_dir / item.file) as tmp,
        open(tmp, "wb") as fh,
        # disable=None: a bar on a terminal only; a log file (non-TTY) gets none
        tqdm(
            total=total, unit=unit, unit_scale=True, desc=item.file, disable=None if progress else True, leave=False
        ) as bar,
    ):
        try:
            for index, record in enumerate(records):
                row = item.row(index, record)
                if row is None:
                    continue
                line = (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode("utf-8")
                fh.write(line)
                digest.update(line)
                rows += 1
                n_words = len(row["text"].split()) if item.corpus else 0
                words += n_words
                bar.update(n_words if unit == "word" else 1)
                if (caps.max_documents and rows >= caps.max_documents) or (caps.max_words and words >= caps.max_words):
                    break  # the document that reaches the word cap is kept whole
        except CPTError:
            raise
        except Exception as exc:  # a network error mid-stream, a record without the expected fields
            why = " ".join(str(exc).split())[:300]
            raise DataError(f"{item.source.label()}: fetch of {item.file} failed: {type(exc).__name__}: {why}") from exc
        if rows == 0:
            raise DataError(f"{item.source.label()}: no rows for {item.file}")
        fh.flush()
        size = fh.tell()
    entry = {
        "request": _request(item, caps),
        "source": item.source.label(),
        "revision": revision or item.source.revision,
        "read_from": source.label() if mirror else None,
        "rows": rows,
        "bytes": size,
        "sha256": digest.hexdigest(),
        "fetched_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if item.corpus:
        entry["words"] = words
    return entry


def fetch(
    data_dir: Path,
    items: list[Item],
    caps: Caps = Caps(),
    mirror: Path | None = None,
    progress: bool = True,
    force: bool = False,
) -> dict[str, str]:
    """Fetch every item not already up to date; returns file -> ``fetched`` | ``up to date``.

    The manifest is rewritten (atomically) after each file, so an interrupted fetch keeps what it finished.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(data_dir)
    status = {}
    for item in items:
        if not force and up_to_date(data_dir, item, caps, manifest):
            status[item.file] = "up to date"
            continue
        log.info("fetching %s from %s", item.file, item.source.label())
        entry = manifest["files"][item.file] = fetch_item(item, data_dir, caps, mirror, progress)
        atomic_write_text(data_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        status[item.file] = "fetched"
        log.info("%s: %d rows, %d bytes", item.file, entry["rows"], entry["bytes"])
    return status


def select(items: list[Item], only: list[str] | None) -> list[Item]:
    """Items whose file matches any of ``only`` (``corpora``, ``benchmarks`` or glob patterns); all if None."""
    if not only:
        return items
    keep = [
        it
        for it in items
        if any(
            (p == "corpora" and it.corpus) or (p == "benchmarks" and not it.corpus) or fnmatch.fnmatch(it.file, p)
            for p in only
        )
    ]
    if not keep:
        raise DataError(f"--only {' '.join(only)}: matches no file (see --list)")
    return keep


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cpt-fetch",
        description="Download the hub stand-in corpora and the offline benchmark files into a local data folder "
        "(cpt-fetch = python -m cpt_experiments.data.fetch).",
        epilog="most common invocations:\n"
        "  cpt-fetch --data-dir data                        # corpora (4M words each) + benchmark files\n"
        "  cpt-fetch --data-dir data --only benchmarks      # only the offline lm-eval benchmark files\n"
        "  cpt-fetch --data-dir data --list                 # what would be fetched, from where\n"
        "then: cpt-train experiment=cpt scale=cpu corpora=fetched paths.data_dir=data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-dir", type=Path, default=None, help="destination (default: $CPT_DATA_DIR)")
    p.add_argument(
        "--only", nargs="+", metavar="WHAT", help="corpora | benchmarks | file globs, e.g. 'benchmarks/blimp/*'"
    )
    p.add_argument(
        "--corpus", nargs="+", default=list(HUB_CORPORA), metavar="NAME", help="hub corpus configs in conf/corpus"
    )
    p.add_argument("--max-words", type=int, default=DEFAULT_MAX_WORDS, help="per corpus; 0 = no cap")
    p.add_argument("--max-documents", type=int, default=0, help="per corpus; 0 = no cap")
    p.add_argument(
        "--mirror", type=Path, default=None, help="read sources from local copies: DIR/<hub id>, DIR/<host>/<path>"
    )
    p.add_argument("--force", action="store_true", help="fetch again even if the manifest entry matches")
    p.add_argument("--list", action="store_true", help="print file <- source and exit")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        items = select(corpus_items(args.corpus) + benchmark_items(), args.only)
        if args.list:
            for it in items:
                print(f"{it.file:60s} <- {it.source.label()}")
            return 0
        env = os.environ.get("CPT_DATA_DIR")
        if args.data_dir is None and not env:
            raise DataError("fetch: no destination; pass --data-dir DIR (or set CPT_DATA_DIR)")
        data_dir = Path(args.data_dir or env).expanduser()
        if data_dir.resolve().is_relative_to(SAMPLE_DIR):
            raise DataError(f"{data_dir}: the embedded sample ships with the package; fetch into another folder")
        caps = Caps(args.max_documents or None, args.max_words or None)
        status = fetch(data_dir, items, caps, args.mirror, progress=not args.no_progress, force=args.force)
    except CPTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = sum(s == "fetched" for s in status.values())
    print(f"{done} files fetched, {len(status) - done} up to date, in {data_dir} (manifest: {data_dir / MANIFEST})")
    print(
        f"use them: python -m cpt_experiments.train corpora=fetched paths.data_dir={data_dir} ... (benchmarks: same paths.data_dir)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
