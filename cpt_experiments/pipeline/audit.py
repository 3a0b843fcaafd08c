"""Do the committed results still come from the code? The checks behind ``python -m cpt_experiments.verify``.

For every ``runs`` row of a results directory:

* its config snapshot ``configs/<config_hash>.yaml`` exists and names the row's run and stage hash;
* its ``git_commit`` is a commit of the repository's history (``git cat-file -e``);
* its ``stage_hash`` is what the current code computes from the snapshot: typed config -> stage graph
  (with the union baseline) -> budgets and schedules -> tokenizer (trained as training trains it, or
  reused from ``cache_dir``) -> each role's train token cache key (``data.token_cache.cache_key``: the
  corpus spec, the sha256 of the source file and the tokenizer hash, which is what a training run's
  cache manifest records) -> ``planning.stage_hashes``. Nothing is trained and no corpus is tokenized.

``failed`` rows (``pipeline.failures``) trained nothing and record no snapshot or commit: they are
skipped. Rows whose corpora are not in ``data_dir`` are reported as *unchecked* with the reason,
never as passed.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cpt_experiments.config import TrainRoot
from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.token_cache import cache_key
from cpt_experiments.data.tokenizer import tokenizer_hash
from cpt_experiments.errors import CPTError, DataError
from cpt_experiments.files import CONF_DIR, REPO_ROOT
from cpt_experiments.hashing import canonical_json
from cpt_experiments.pipeline.context import roles_of, run_tokenizer, typed_config
from cpt_experiments.pipeline.planning import build_stages, stage_hashes
from cpt_experiments.pipeline.records import NOT_IDENTITY
from cpt_experiments.pipeline.stage_plan import Geometry, steps_and_schedule
from cpt_experiments.results import store

#: The evaluation suite is not part of a run's identity (not in the snapshot); any valid one will do.
_SUITE_FILE = CONF_DIR / "eval_suite" / "heldout.yaml"


@dataclass
class Report:
    """What ``audit`` found: one line per mismatch, one line per snapshot it could not check."""

    results_dir: Path
    rows: int = 0
    checked: int = 0  # rows whose stage hash was rebuilt (and matched or not)
    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Rebuilt:
    """A snapshot's stage hashes as the current code computes them, and the content hashes they rest on."""

    hashes: dict[str, str]
    tokenizer_hash: str
    corpus_ids: dict[str, str]  # role -> ``<corpus name>@<train cache key[:12]>`` (the runs ``corpora`` column)


class Auditor:
    """Rebuilds stage hashes from config snapshots; tokenizers and commit look-ups are shared across calls."""

    def __init__(self, data_dir: str | Path, cache_dir: str | Path, repo: Path = REPO_ROOT) -> None:
        self.data_dir, self.cache_dir, self.repo = str(data_dir), str(cache_dir), repo
        self._tokenizers: dict[str, tuple[Any, str]] = {}
        self._commits: dict[str, bool] = {}
        self._suite = yaml.safe_load(_SUITE_FILE.read_text())

    def full_config(self, snapshot_cfg: Mapping[str, Any]) -> dict[str, Any]:
        """The snapshot (identity keys only) plus the keys it leaves out: paths here, a valid suite."""
        paths = {"data_dir": self.data_dir, "benchmark_dir": f"{self.data_dir}/benchmarks", "output_dir": self.cache_dir,
                 "cache_dir": self.cache_dir, "stage_dir": f"{self.cache_dir}/stages",
                 "results_dir": f"{self.cache_dir}/results"}  # fmt: skip
        rest = {k: v for k, v in snapshot_cfg.items() if k not in NOT_IDENTITY}
        return {"paths": paths, "evaluation": {"auto": False, "suite": self._suite}, **rest}

    def _tokenizer(self, root: TrainRoot) -> tuple[Any, str]:
        corpus = root.corpora.get(root.tokenizer.train_corpus or "")
        key = canonical_json([asdict(root.tokenizer), asdict(corpus) if corpus is not None else None])
        if key not in self._tokenizers:
            try:
                tok = run_tokenizer(root)
            except CPTError as exc:  # e.g. a hub tokenizer or corpus offline: this machine cannot tell
                raise DataError(f"the tokenizer could not be built here: {exc}") from exc
            self._tokenizers[key] = (tok, tokenizer_hash(tok))
        return self._tokenizers[key]

    def rebuild(self, snapshot_cfg: Mapping[str, Any]) -> Rebuilt:
        """Stage hashes of a snapshot's experiment; ConfigError if the code rejects it, DataError without data."""
        root, _ = typed_config(self.full_config(snapshot_cfg))
        assert root.experiment is not None  # typed_config guarantees it
        stages = build_stages(root.experiment)
        geometry = Geometry(root.model.seq_len, root.train.global_batch_windows)
        for stage in stages.values():  # the budget and schedule checks of plan_experiment
            steps_and_schedule(stage, geometry)
        tok, tok_hash = self._tokenizer(root)
        keys, ids = {}, {}
        for role in roles_of(stages):
            spec = CorpusSpec.from_config(root.corpora[role], key=f"corpora.{role}")
            keys[role] = cache_key(spec, "train", tok, self.data_dir)
            ids[role] = f"{spec.name}@{keys[role][:12]}"
        return Rebuilt(stage_hashes(stages, root, tok_hash, keys, geometry), tok_hash, ids)

    def commit_exists(self, sha: str) -> bool:
        if sha not in self._commits:
            probe = subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=self.repo, capture_output=True)
            self._commits[sha] = probe.returncode == 0
        return self._commits[sha]


def _cell(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA else str(value)


def audit(results_dir: str | Path, auditor: Auditor) -> Report:
    """Check every runs row of ``results_dir`` (snapshot, commit, stage hash); see the module docstring."""
    results_dir = Path(results_dir)
    report = Report(results_dir)
    runs = store.load(results_dir, "runs")
    report.rows = len(runs)
    rows = [{k: _cell(v) for k, v in r.items()} for r in runs.to_dict("records") if r["status"] != "failed"]
    for r in rows:
        where = f"{results_dir}/runs: {r['run_id']}/{r['stage']}"
        sha = r["git_commit"].removesuffix("+dirty")
        if not sha:
            report.problems.append(f"{where}: no git_commit recorded")
        elif not auditor.commit_exists(sha):
            report.problems.append(f"{where}: git_commit {sha} is not in the history of {auditor.repo}")
        if r["git_commit"].endswith("+dirty"):
            report.problems.append(f"{where}: written from a dirty tree ({r['git_commit']}), no commit reproduces it")
    by_config: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_config.setdefault(r["config_hash"], []).append(r)
    for cfg_hash, group in by_config.items():
        _audit_snapshot(results_dir, cfg_hash, group, auditor, report)
    return report


def _audit_snapshot(
    results_dir: Path, cfg_hash: str, rows: list[dict[str, str]], auditor: Auditor, report: Report
) -> None:
    """The rows of one config snapshot: the snapshot itself, then each row's hashes against the rebuilt ones."""
    path = results_dir / "configs" / f"{cfg_hash}.yaml"
    label = f"{path} ({len(rows)} rows of {', '.join(sorted({r['run_id'] for r in rows}))})"
    if not cfg_hash or not path.is_file():
        report.problems += [f"{results_dir}/runs: {r['run_id']}/{r['stage']}: no config snapshot {path}" for r in rows]
        return
    try:
        doc = yaml.safe_load(path.read_text())
        snapshot_cfg, recorded = doc["config"], dict(doc["stage_hashes"])
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        report.problems.append(f"{label}: unreadable snapshot ({type(exc).__name__}: {exc})")
        return
    if doc.get("config_hash") != cfg_hash:
        report.problems.append(f"{label}: snapshot says config_hash {doc.get('config_hash')}")
    try:
        rebuilt = auditor.rebuild(snapshot_cfg)
    except DataError as exc:
        report.unchecked.append(f"{label}: not checked, {exc} (set CPT_DATA_DIR or --data-dir)")
        return
    except CPTError as exc:
        report.problems.append(f"{label}: the current code rejects the snapshot: {exc}")
        return
    for r in rows:
        where = f"{results_dir}/runs: {r['run_id']}/{r['stage']}"
        report.checked += 1
        if recorded.get(r["stage"]) != r["stage_hash"]:
            report.problems.append(
                f"{where}: stage_hash {r['stage_hash']} but the snapshot has {recorded.get(r['stage'])}"
            )
        new = rebuilt.hashes.get(r["stage"])
        if new is None:
            report.problems.append(
                f"{where}: the rebuilt plan has no stage {r['stage']!r} ({', '.join(rebuilt.hashes)})"
            )
        elif new != r["stage_hash"]:
            report.problems.append(f"{where}: stage_hash {r['stage_hash']} is rebuilt as {new}{_why(r, rebuilt)}")
        parent = rebuilt.hashes.get(r["parent_stage"]) if r["parent_stage"] else ""
        if parent != r["parent_hash"]:
            report.problems.append(
                f"{where}: parent_hash {r['parent_hash'] or '(none)'} but its parent is rebuilt as {parent}"
            )


def _why(row: Mapping[str, str], rebuilt: Rebuilt) -> str:
    """Which recorded content hash differs from the rebuilt one (tokenizer, corpora), if one does."""
    causes = []
    if row["tokenizer_hash"] and not rebuilt.tokenizer_hash.startswith(row["tokenizer_hash"]):
        causes.append(f"tokenizer {row['tokenizer_hash']} -> {rebuilt.tokenizer_hash[:16]}")
    for item in filter(None, row["corpora"].split(",")):
        role, _, recorded = item.partition("=")
        if role in rebuilt.corpus_ids and rebuilt.corpus_ids[role] != recorded:
            causes.append(f"corpus {role} {recorded} -> {rebuilt.corpus_ids[role]}")
    return (
        f" (changed: {'; '.join(causes)})"
        if causes
        else " (tokenizer and corpora unchanged: the config or the hash code)"
    )


def check_figures(results_dir: str | Path, only: list[str] | None = None) -> list[str]:
    """Redraw every figure (or ``only`` these) into a temporary folder, as png; a line per figure that
    failed and per figure committed in ``<results_dir>/figures`` that was not redrawn."""
    results_dir = Path(results_dir)
    committed = sorted({p.stem for p in (results_dir / "figures").glob("*.png")})
    with tempfile.TemporaryDirectory(prefix="cpt-verify-figures-") as out:
        cmd = [sys.executable, "-m", "cpt_experiments.figures", "--results", str(results_dir), "--out", out]
        proc = subprocess.run(
            [*cmd, "--formats", "png", *(["--only", *only] if only else [])], capture_output=True, text=True
        )
    status = dict(line.split(None, 1) for line in proc.stdout.splitlines() if len(line.split(None, 1)) == 2)
    problems = [f"{results_dir}: figure {n} {s}" for n, s in status.items() if s.startswith("failed")]
    problems += [
        f"{results_dir}: figure {n} is committed in figures/ but not redrawn ({status.get(n, 'not built')})"
        for n in committed
        if (only is None or n in only) and not status.get(n, "").startswith("ok")
    ]
    if proc.returncode != 0 and not problems:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        problems.append(f"{results_dir}: python -m cpt_experiments.figures failed: {last}")
    return problems
