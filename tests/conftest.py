"""Shared fixtures: a synthetic corpus folder (``data_dir``), the real corpora (``real_data_dir``, for tests
marked ``real_data`` only), thread limits.

The default suite must be as strong without ``../shared/data`` as with it, so everything that only needs
*some* English and German text runs on the synthetic folder; only tests about the real files read them.
To make a silent dependence on the real data impossible (CI has it, a contributor may not), every test
process points data discovery at its synthetic folder: ``CPT_DATA_DIR`` is set to it at start-up, so a
config composed without ``paths.data_dir`` (and any subprocess) reads synthetic text, never
``../shared/data``. Only tests marked ``real_data`` get ``CPT_DATA_DIR`` back, pointing at the real corpora.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import string
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CORPUS_FILES = ("A_en_wikipedia.jsonl", "B_en_web_mix.jsonl", "C_de_bundestag.jsonl")
REAL_DATA_MISSING = (
    "real corpora not found: set CPT_DATA_DIR to the folder with A_en_wikipedia.jsonl (e.g. ../shared/data)"
)


# --- real data -----------------------------------------------------------------------------------------------------


# The real-data folder as the user's environment gave it, captured before this process points
# CPT_DATA_DIR at its synthetic folder; inherited by xdist workers through the environment.
REAL_DATA_ENV = "CPT_TEST_REAL_DATA_DIR"


def _discover_real_data_dir() -> Path | None:
    """``$CPT_DATA_DIR`` if set (even when it holds nothing: that is how to test without the data),
    else ``../shared/data`` beside the checkout; None unless it holds the real corpora."""
    env = os.environ.get("CPT_DATA_DIR")
    candidate = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    if all((candidate / name).is_file() for name in CORPUS_FILES):
        return candidate.resolve()
    return None


def find_real_data_dir() -> Path | None:
    """The real corpora found at start-up (before ``CPT_DATA_DIR`` was pointed at the synthetic folder)."""
    value = os.environ.get(REAL_DATA_ENV)
    if value is None:  # conftest not configured (imported on its own)
        return _discover_real_data_dir()
    return Path(value) if value else None


_SYNTHETIC: dict[str, Path] = {}


def pytest_configure(config: pytest.Config) -> None:
    if REAL_DATA_ENV not in os.environ:  # the xdist controller (or a plain run) captures it once
        real = _discover_real_data_dir()
        os.environ[REAL_DATA_ENV] = str(real) if real else ""
    is_xdist_controller = bool(getattr(config.option, "numprocesses", None)) and "PYTEST_XDIST_WORKER" not in os.environ
    if is_xdist_controller:
        return  # runs no tests; each worker makes its own folder
    folder = Path(tempfile.mkdtemp(prefix="cpt-synthetic-data-"))
    write_synthetic_corpora(folder)
    shutil.copytree(FIXTURES / "benchmarks", folder / "benchmarks")
    _SYNTHETIC["dir"] = folder
    os.environ["CPT_DATA_DIR"] = str(folder)
    os.environ.pop("CPT_BENCHMARK_DIR", None)  # <data_dir>/benchmarks, the synthetic files


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = _SYNTHETIC.pop("dir", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def _real_data_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only a test marked real_data sees the real corpora through data discovery.
    if request.node.get_closest_marker("real_data") is not None:
        real = find_real_data_dir()
        if real is not None:
            monkeypatch.setenv("CPT_DATA_DIR", str(real))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Skip at collection, not in a fixture: a real_data test then never builds its other fixtures.
    if find_real_data_dir() is not None:
        return
    skip = pytest.mark.skip(reason=REAL_DATA_MISSING)
    for item in items:
        if item.get_closest_marker("real_data"):
            item.add_marker(skip)


def _require_real_data_marker(request: pytest.FixtureRequest) -> None:
    # Without the marker `-m "not real_data"` would not deselect the test and the skip hook would miss it.
    if request.node.get_closest_marker("real_data") is None:
        pytest.fail(f"{request.node.nodeid} reads the real corpora: mark it @pytest.mark.real_data", pytrace=False)


@pytest.fixture
def real_data_dir(request: pytest.FixtureRequest) -> Path:
    """The real corpora (``CPT_DATA_DIR`` or ``../shared/data``); only for tests marked ``real_data``."""
    _require_real_data_marker(request)
    d = find_real_data_dir()
    if d is None:
        pytest.skip(REAL_DATA_MISSING)
    return d


@pytest.fixture
def real_benchmark_dir(real_data_dir: Path) -> Path:
    """The real offline benchmark files (``CPT_BENCHMARK_DIR`` or ``<real data>/benchmarks``)."""
    d = Path(os.environ.get("CPT_BENCHMARK_DIR") or real_data_dir / "benchmarks")
    if not (d / "piqa_validation.jsonl").is_file():
        pytest.skip(f"real benchmark files not found in {d}: set CPT_BENCHMARK_DIR")
    return d.resolve()


# --- synthetic corpora ---------------------------------------------------------------------------------------------
# Word lists and sentence templates: English and German differ in vocabulary, letter statistics (umlauts, ß,
# long compounds, capitalised nouns) and register, so a model trained on one has a clearly higher loss on the
# other, and the English-trained BPE compresses German worse, as with the real corpora.

EN_NOUNS = """river valley bridge castle village harbour mountain island railway church market library museum
garden forest meadow lake coast tower palace school university army navy battle treaty empire kingdom republic
province county district city town parish station road canal mill factory mine farm estate temple monastery
cathedral fortress wall gate square street theatre orchestra novel poem painting sculpture language dialect
religion festival tradition custom law constitution parliament council court election government minister king
queen prince duke bishop merchant farmer soldier sailor scholar poet painter composer engineer architect
scientist physician planet star comet moon orbit telescope atom molecule element metal mineral crystal species
plant tree flower bird fish insect mammal reptile climate season rainfall drought flood harvest trade industry
commerce economy currency population census century decade period dynasty""".split()
EN_ADJS = """ancient large small northern southern eastern western early late famous important major minor public
royal local national rural urban coastal modern medieval industrial agricultural religious political economic
cultural natural wooden narrow wide deep shallow rich poor quiet busy bright dark green golden silver heavy long
short common rare strong gentle steep fertile dry warm cold""".split()
EN_ADVS = "quickly slowly rarely often widely largely mostly gradually eventually recently formerly originally".split()
# base:past:present (third person)
EN_VERBS = [
    tuple(v.split(":"))
    for v in """build:built:builds found:founded:founds describe:described:describes rule:ruled:rules
defend:defended:defends capture:captured:captures design:designed:designs restore:restored:restores
publish:published:publishes replace:replaced:replaces establish:established:establishes expand:expanded:expands
connect:connected:connects produce:produced:produces support:supported:supports destroy:destroyed:destroys
visit:visited:visits study:studied:studies write:wrote:writes divide:divided:divides cross:crossed:crosses
surround:surrounded:surrounds govern:governed:governs use:used:uses try:tried:tries fix:fixed:fixes
clean:cleaned:cleans check:checked:checks grind:ground:grinds brew:brewed:brews ride:rode:rides
install:installed:installs update:updated:updates break:broke:breaks test:tested:tests change:changed:changes
buy:bought:buys recommend:recommended:recommends taste:tasted:tastes""".split()
]
EN_FIRST = "Thomas Mary William Elizabeth John Margaret Henry Anne Charles Catherine Edward Alice Robert Helen".split()
EN_LAST = "Harris Walker Thompson Whitfield Morgan Carter Bennett Hughes Fletcher Sinclair Ashworth Pemberton".split()
EN_PLACES = """Northbridge Ashford Kingsley Harrowgate Westmoor Fairhaven Elmstead Brackenridge Millbrook Stonehaven
Redcliffe Oakham Thornbury Wexley Marlow Dunmore""".split()
EN_COUNTRIES = "England Scotland Ireland Wales France Spain Italy Norway Sweden Greece Egypt India Canada".split()
EN_HEADINGS = "History. Geography. Economy. Culture. Architecture. Population. Legacy. Etymology.".split()
WEB_NOUNS = """coffee beer bike grinder kettle recipe brewery chain tire saddle helmet compiler function error release
version package thread answer comment forum guitar chord song album lesson student teacher homework exam espresso
filter bean hop yeast stout lager wheel brake gear laptop keyboard browser server script""".split()
WEB_ADJS = "cheap expensive weird great awful decent fresh bitter sour smooth noisy broken simple tricky".split()
WEB_WHEN = "week month weekend morning year summer winter time".split()

DE_NPS = """die Bundesregierung|der Bundestag|das Gesetz|die Regierung|der Haushalt|die Wirtschaft|die Energiewende|
der Klimaschutz|die Bildung|die Forschung|das Gesundheitswesen|die Pflege|die Rente|der Mittelstand|
die Landwirtschaft|die Digitalisierung|der Wohnungsbau|die Inflation|die Kommunen|die Länder|der Bund|
die Bürgerinnen und Bürger|die Arbeitnehmerinnen und Arbeitnehmer|die Unternehmen|die Verwaltung|die Bundeswehr|
die Sicherheit|die Außenpolitik|die Europäische Union|der Verkehr|die Bahn|die Schulen|die Hochschulen|
die Familien|die Gesellschaft|die Demokratie|der Rechtsstaat|die Justiz|die Polizei|die Steuerpolitik|
die Schuldenbremse|der Arbeitsmarkt|die Fachkräfte|die Zuwanderung|die Integration|der Datenschutz|
die Versorgung|die Krankenhäuser|der Umweltschutz|die Stromversorgung|die Wärmepumpe|das Heizungsgesetz|
die Industrie|der Export|die Landwirte|die Innenstädte|der Antrag|der Gesetzentwurf|die Koalition|
die Opposition|der Föderalismus|die Gebäudesanierung|der Breitbandausbau|die Mietpreisbremse""".replace("\n", "").split(
    "|"
)
DE_INF = """stärken verbessern fördern entlasten unterstützen sichern modernisieren beschleunigen ausbauen reformieren
überprüfen begrenzen finanzieren schützen gestalten vereinfachen digitalisieren verhindern ermöglichen
umsetzen""".split()
DE_PART = """gestärkt verbessert gefördert entlastet unterstützt gesichert modernisiert beschleunigt ausgebaut
reformiert überprüft begrenzt finanziert geschützt gestaltet vereinfacht digitalisiert verhindert ermöglicht
umgesetzt""".split()
DE_ADJS = """wichtig notwendig richtig falsch dringend gerecht unsozial nachhaltig verantwortungslos überfällig
entscheidend schwierig möglich unverzichtbar zukunftsfähig bezahlbar sicher klar ehrlich vernünftig""".split()
DE_ADVS = "endlich schnell dringend gemeinsam deutlich konsequent wirklich nachhaltig dauerhaft sofort".split()
DE_PARTIES = ["SPD", "CDU/CSU", "BÜNDNIS 90/DIE GRÜNEN", "FDP", "AfD", "Linken"]
DE_LAST = """Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Koch Richter Klein Wolf
Schröder Neumann Braun Zimmermann Krüger Hartmann""".split()
DE_OPENINGS = [
    "Sehr geehrte Frau Präsidentin! Liebe Kolleginnen und Kollegen! Meine Damen und Herren!",
    "Herr Präsident! Meine sehr verehrten Damen und Herren!",
    "Frau Präsidentin! Liebe Kolleginnen und Kollegen! Liebe Zuschauerinnen und Zuschauer auf den Tribünen!",
]
DE_CLOSINGS = ["Vielen Dank.", "Herzlichen Dank für Ihre Aufmerksamkeit.", "Ich bitte um Zustimmung. Vielen Dank."]

WIKI_TEMPLATES = [
    "The {adj} {noun} of {place} was {vpast} in {year} by {first} {last}.",
    "In {year}, {first} {last} {vpast} the {noun} and the {noun2}, which {vpast2} the {adj} {noun3} of the region.",
    "{place} is a {adj} {noun} in the {adj2} part of {country}, known for its {noun2} and its {noun3}.",
    "During the {ord} century the {noun} became {adv} {adj} among the people of {place}.",
    "According to {first} {last}, the {noun} {vpres} the {adj} {noun2} because it {vpres2} the {noun3}.",
    "The {noun} was {adv} {vpast} after the {noun2} of {year}, when the {adj} {noun3} {vpast2} the {noun4}.",
    "Its {noun} is {adj} and {adj2}, with a {noun2} of about {num} {unit}.",
    "Many {noun}s of the {adj} {noun2} were {vpast} by the {noun3} of {country} before {year}.",
]
WEB_TEMPLATES = [
    "I {vpast} my {wnoun} last {when} and it {vpast2} pretty {adv}.",
    "Does anyone know why my {wnoun} {vpres} so {wadj} after a {num} minute {wnoun2}?",
    "In my experience you should {vbase} the {wnoun} before you {vbase2} the {wnoun2}.",
    "Thanks for the answer, that {vpast} the problem with my {wnoun}.",
    "Honestly, I think a {wadj} {wnoun} is {adv} better than a {wadj2} {wnoun2}.",
    "We {vpast} a new {wnoun} in version {num}.{num2}, and it {vpres} the old {wnoun2}.",
    "If you are new to this, start with a {wadj} {wnoun} and {vbase} it every {when}.",
    "Edit: I {vpast} the {wnoun} again and now it {vpres} {adv}.",
    "You can {vbase} the {wnoun} yourself, but it is {wadj} and you will need a {wnoun2}.",
]
DE_TEMPLATES = [
    "{np} muss {dadv} {dpart} werden.",
    "Wir wollen {acc} {dadv} {dinf}, und das ist {dadj}.",
    "Meine Damen und Herren, das ist {dadj}!",
    "Im Jahr {dyear} haben wir {num} Milliarden Euro für {acc} bereitgestellt.",
    "Die Kolleginnen und Kollegen der {party} haben {acc} über Jahre vernachlässigt.",
    "Deshalb ist es {dadj}, dass wir {acc} jetzt {dinf}.",
    "Herr Kollege {dlast}, Sie wissen doch genau, dass {np} {dadv} {dpart} werden muss.",
    "Es geht um {acc} und um {acc2}, und das betrifft Millionen Menschen in unserem Land.",
    "Mit diesem Gesetzentwurf schaffen wir die Grundlage dafür, {acc} zu {dinf}.",
    "Ich sage Ihnen ganz klar: Ohne {acc} gibt es keine Zukunft für {acc2}.",
    "Seit {dyear} sind die Kosten für {acc} um {num} Prozent gestiegen.",
    "Frau Ministerin {dlast} hat angekündigt, {acc} {dadv} zu {dinf}.",
]


def _accusative(np: str) -> str:
    return "den" + np[3:] if np.startswith("der ") else np


# One zero-argument generator per slot name; the same name twice in a template draws twice (noun, noun2, ...).
def _slot_makers(rng: random.Random) -> dict[str, Callable[[], str]]:
    ch, ri = rng.choice, rng.randint
    return {
        "noun": lambda: ch(EN_NOUNS),
        "adj": lambda: ch(EN_ADJS),
        "adv": lambda: ch(EN_ADVS),
        "vbase": lambda: ch(EN_VERBS)[0],
        "vpast": lambda: ch(EN_VERBS)[1],
        "vpres": lambda: ch(EN_VERBS)[2],
        "first": lambda: ch(EN_FIRST),
        "last": lambda: ch(EN_LAST),
        "place": lambda: ch(EN_PLACES),
        "country": lambda: ch(EN_COUNTRIES),
        "year": lambda: str(ri(1150, 1990)),
        "ord": lambda: ch(["twelfth", "fourteenth", "sixteenth", "eighteenth", "nineteenth"]),
        "num": lambda: str(ri(2, 900)),
        "unit": lambda: ch(["metres", "kilometres", "hectares", "inhabitants", "tonnes"]),
        "wnoun": lambda: ch(WEB_NOUNS),
        "wadj": lambda: ch(WEB_ADJS),
        "when": lambda: ch(WEB_WHEN),
        "np": lambda: ch(DE_NPS),
        "acc": lambda: _accusative(ch(DE_NPS)),
        "dinf": lambda: ch(DE_INF),
        "dpart": lambda: ch(DE_PART),
        "dadj": lambda: ch(DE_ADJS),
        "dadv": lambda: ch(DE_ADVS),
        "dlast": lambda: ch(DE_LAST),
        "party": lambda: ch(DE_PARTIES),
        "dyear": lambda: str(ri(2005, 2024)),
    }


def _compile(templates: list[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each template with its (field, slot) pairs, parsed once (``noun2`` is a second draw of ``noun``)."""
    out = []
    for t in templates:
        fields = [f for _, f, _, _ in string.Formatter().parse(t) if f]
        out.append((t, [(f, f.rstrip("0123456789")) for f in fields]))
    return out


def _paragraphs(rng: random.Random, templates: list, makers: dict, n_words: int, per_par: tuple[int, int]) -> list:
    pars, words = [], 0
    while words < n_words:
        sentences = []
        for _ in range(rng.randint(*per_par)):
            template, fields = rng.choice(templates)
            s = template.format(**{f: makers[slot]() for f, slot in fields})
            sentences.append(s[0].upper() + s[1:])
            words += s.count(" ") + 1
        pars.append(" ".join(sentences))
    return pars


def write_synthetic_corpora(out: Path, docs_per_corpus: int = 300, seed: int = 0) -> Path:
    """Write the three corpus files of the real data folder (same names, ``id`` + ``text`` JSONL) into ``out``.

    Deterministic in ``seed``; documents of 300-600 words, paragraphs separated by ``\\n`` (web threads by
    ``\\n\\n``), as in the real files.
    """
    out.mkdir(parents=True, exist_ok=True)
    wiki, web, de = _compile(WIKI_TEMPLATES), _compile(WEB_TEMPLATES), _compile(DE_TEMPLATES)
    for index, name in enumerate(CORPUS_FILES):
        rng = random.Random(f"{seed}-{name}")
        makers = _slot_makers(rng)
        rows = []
        for i in range(docs_per_corpus):
            n_words = rng.randint(300, 600)
            if index == 0:
                title = f"{rng.choice(EN_PLACES)} {rng.choice(EN_NOUNS).capitalize()}"
                pars = _paragraphs(rng, wiki, makers, n_words, (3, 6))
                for k in range(2, len(pars), 3):  # WikiExtractor keeps section headings as lines ending in "."
                    pars.insert(k, rng.choice(EN_HEADINGS))
                rows.append({"id": f"enwiki-{1000 + i}", "text": title + "\n\n" + "\n".join(pars)})
            elif index == 1:
                title = f"How do I {rng.choice(EN_VERBS)[0]} a {rng.choice(WEB_ADJS)} {rng.choice(WEB_NOUNS)}?"
                pars = _paragraphs(rng, web, makers, n_words, (2, 4))
                rows.append({"id": f"web-{i}", "text": title + "\n\n" + "\n\n".join(pars)})
            else:
                pars = _paragraphs(rng, de, makers, n_words, (3, 6))
                text = "\n".join([rng.choice(DE_OPENINGS), *pars, rng.choice(DE_CLOSINGS)])
                rows.append({"id": f"bt-{700000 + i}", "text": text})
        with open(out / name, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return out


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic stand-in for ``../shared/data``: the three corpora (about 300 documents each, enough
    tokens for every stage at ``scale=smoke``) and ``benchmarks/`` with a few hand-made items per file in
    the schema of the real benchmark files (copied from ``tests/fixtures/benchmarks``)."""
    if "dir" in _SYNTHETIC:  # the folder CPT_DATA_DIR points at (pytest_configure)
        return _SYNTHETIC["dir"]
    start = time.perf_counter()
    out = write_synthetic_corpora(tmp_path_factory.mktemp("synthetic_data"))
    shutil.copytree(FIXTURES / "benchmarks", out / "benchmarks")
    assert time.perf_counter() - start < 10, "synthetic data generation became slow"
    return out


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``paths.cache_dir`` (tokenizers, token caches) for the tests that train on ``data_dir``, so each
    tokenizer is trained once per test process rather than once per module. Safe to share: every entry is
    content-addressed (corpus spec, file digest, tokenizer) and written atomically. A test about what a run
    writes into its cache gives the run a cache of its own."""
    return tmp_path_factory.mktemp("smoke_cache")


@pytest.fixture(scope="session")
def benchmark_dir(data_dir: Path) -> Path:
    """The synthetic offline benchmark folder (``<data_dir>/benchmarks``, the default ``paths.benchmark_dir``)."""
    return data_dir / "benchmarks"


@pytest.fixture(autouse=True, scope="session")
def _limit_threads() -> None:
    # CI has 2 cores; more threads than cores only adds contention, and under pytest-xdist each of the
    # two worker processes gets one.
    try:
        import torch

        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // workers))
    except ImportError:
        pass


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module: the tiny evaluation models' matmuls take microseconds, and a
    second thread only adds contention on a shared 2-core machine (measured 25x slower forward passes
    under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- Hydra composition ----------------------------------------------------------------------------------------------


def compose(*overrides: str, config_name: str | None = "train", return_hydra_config: bool = False):
    """The config ``python -m cpt_experiments.<config_name>`` would run with ``overrides``, composed from
    ``conf/`` (``config_name=None``: an empty root, for one group such as ``+corpora=local``). The one
    composition helper of the tests: ``from conftest import compose``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name, list(overrides), return_hydra_config=return_hydra_config)


def run_cli(cli: Callable[[], None], prog: str, *args: str) -> int:
    """Exit status of a command's ``cli()`` run in this process as ``prog args...``: what ``python -m`` runs,
    Hydra's job set-up included, without a second interpreter's start-up (seconds of imports on 2 cores).
    One subprocess test per command keeps the ``python -m`` wiring itself covered. Hydra points the root logger
    at the (captured) stdout and the job's log file; those handlers are closed and the root logger restored
    afterwards, so later tests in this process see the logging they started with."""
    import logging
    import sys

    from hydra.core.global_hydra import GlobalHydra

    root = logging.getLogger()
    handlers, level, argv = root.handlers[:], root.level, sys.argv
    sys.argv = [prog, *args]
    try:
        cli()
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        sys.argv = argv
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        GlobalHydra.instance().clear()


# --- paper-1 results fixture -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def paper1_tables() -> tuple:
    """(runs, curves) of ``tests/fixtures/paper1``: real smoke-scale runs of the paper-1 presets (generate.sh there)."""
    from cpt_experiments.results import store

    return store.load(FIXTURES / "paper1", "runs"), store.load(FIXTURES / "paper1", "curves")


@pytest.fixture(scope="session")
def paper1_finals(paper1_tables):
    """``comparisons.finals`` of the paper-1 fixture: final loss and bpb per model, seed and domain."""
    from cpt_experiments.results import comparisons

    runs, curves = paper1_tables
    return comparisons.finals(curves, runs)
