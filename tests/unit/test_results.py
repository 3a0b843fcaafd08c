"""The results store: schema round trip, idempotent re-collection, replacement, atomicity, locking, errors."""

from __future__ import annotations

import gzip
import multiprocessing as mp
from pathlib import Path

import pandas as pd
import pytest

from cpt_experiments.errors import ConfigError, DataError
from cpt_experiments.results import schema, store


def _run_rows(rid: str = "rewarm-s0-abcdef1", tokens: int = 8000) -> list[dict]:
    return [
        dict(run_id=rid, experiment="rewarm", stage="pretrain", role="pretrain", status="reused", shift="weak",
             seed=0, stage_tokens=tokens, cumulative_tokens=tokens, eta_max=3e-4, stage_hash="h0"),
        dict(run_id=rid, experiment="rewarm", stage="continual", parent_stage="pretrain", role="continual",
             status="done", shift="weak", replay_ratio=0.05, replay_mode="fresh", seed=0, version=None,
             stage_tokens=tokens, cumulative_tokens=2 * tokens, eta_max=3e-4, stage_flops=1.5e12, created_at="2025-01-01"),
    ]  # fmt: skip


def _curve_rows(rid: str, stage: str, value: float) -> list[dict]:
    return [dict(run_id=rid, stage=stage, step=s, tokens=1000 * s, split="en_old", metric="loss", value=value + s / 3)
            for s in range(3)]  # fmt: skip


def test_run_id_is_deterministic() -> None:
    assert schema.run_id("rewarm_weak", 2, "0123456789abcdef") == "rewarm_weak-s2-0123456"


def test_schema_round_trip_keeps_values_and_dtypes(tmp_path: Path) -> None:
    store.append(tmp_path, "runs", _run_rows())
    df = store.load(tmp_path, "runs")
    assert list(df.columns) == list(schema.SCHEMAS["runs"])
    assert {c: str(t) for c, t in df.dtypes.items()} == {
        c: {"string": "string", "Int64": "Int64", "float64": "float64", "boolean": "boolean"}[t]
        for c, t in schema.SCHEMAS["runs"].items()
    }
    row = df.set_index("stage").loc["continual"]
    assert row["replay_ratio"] == 0.05 and row["stage_tokens"] == 8000 and row["stage_flops"] == 1.5e12
    assert row["parent_stage"] == "pretrain" and pd.isna(row["version"]) and pd.isna(df.loc[1, "parent_stage"])
    # sorted by (run_id, stage)
    assert list(df["stage"]) == ["continual", "pretrain"]
    # floats survive exactly (repr round trip)
    store.append(tmp_path, "curves", _curve_rows("r", "s", 0.1))
    assert list(store.load(tmp_path, "curves")["value"]) == [0.1, 0.1 + 1 / 3, 0.1 + 2 / 3]


def test_append_same_run_twice_gives_identical_table(tmp_path: Path) -> None:
    path = store.append(tmp_path, "runs", _run_rows())
    first = path.read_bytes()
    store.append(tmp_path, "runs", _run_rows())
    assert path.read_bytes() == first
    store.append(tmp_path, "runs", store.load(tmp_path, "runs"))
    assert path.read_bytes() == first


def test_recollecting_a_stage_replaces_only_its_rows(tmp_path: Path) -> None:
    store.append(tmp_path, "curves", _curve_rows("a", "pretrain", 1.0) + _curve_rows("a", "continual", 2.0))
    store.append(tmp_path, "curves", _curve_rows("b", "continual", 3.0))
    # the re-run continual stage of "a" logged only 2 steps: its 3 old rows must all go
    store.append(tmp_path, "curves", _curve_rows("a", "continual", 5.0)[:2])
    df = store.load(tmp_path, "curves")
    a_cont = df[(df["run_id"] == "a") & (df["stage"] == "continual")]
    assert list(a_cont["value"]) == [5.0, 5.0 + 1 / 3]
    assert len(df[(df["run_id"] == "a") & (df["stage"] == "pretrain")]) == 3
    assert len(df[df["run_id"] == "b"]) == 3 and len(df) == 8


def test_evals_replace_per_task(tmp_path: Path) -> None:
    row = dict(run_id="a", stage="continual", task="hellaswag", metric="acc", value=0.3, stderr=0.01, num_fewshot=0)
    store.append(tmp_path, "evals", [row, dict(row, task="arc_easy", value=0.4)])
    store.append(tmp_path, "evals", [dict(row, value=0.35, task_version=1.0)])
    df = store.load(tmp_path, "evals").set_index("task")
    assert df.loc["hellaswag", "value"] == 0.35 and df.loc["arc_easy", "value"] == 0.4
    assert df.loc["hellaswag", "task_version"] == "1.0"


def test_failed_write_leaves_old_table_and_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = store.append(tmp_path, "runs", _run_rows())
    before = path.read_bytes()

    def half_write(df: pd.DataFrame, dest: Path, compressed: bool = False) -> None:
        dest.write_text(df.to_csv(index=False)[:50])
        raise OSError("disk full")

    monkeypatch.setattr(store, "_write_csv", half_write)
    with pytest.raises(OSError, match="disk full"):
        store.append(tmp_path, "runs", _run_rows("other-s0-1234567"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv", "runs.csv.lock"]


def _append_many(args: tuple[str, int]) -> None:
    results_dir, worker = args
    for i in range(5):
        store.append(results_dir, "curves", _curve_rows(f"w{worker}-{i}", "continual", float(i)))


def test_concurrent_appenders_lose_no_rows(tmp_path: Path) -> None:
    with mp.get_context("fork").Pool(2) as pool:
        pool.map(_append_many, [(str(tmp_path), 0), (str(tmp_path), 1)])
    df = store.load(tmp_path, "curves")
    assert df["run_id"].nunique() == 10 and len(df) == 30


@pytest.mark.parametrize(
    ("table", "rows", "exc", "match"),
    [
        ("metrics", [{}], ConfigError, r"^table: unknown results table 'metrics'"),
        ("runs", [dict(run_id="a", stage="s", role="pretrain", status="done")], DataError, r"^runs: missing required column 'experiment'$"),
        ("runs", [dict(run_id="a", experiment="e", stage="s", role="teacher", status="done")], DataError, r"^runs: column 'role' has value 'teacher'"),
        ("curves", [dict(run_id="a", stage="s", step="x", tokens=1, split="en_old", metric="loss", value=1.0)], DataError, r"^curves: column 'step' does not convert"),
        ("evals", [dict(run_id="a", stage="s", task="t", metric="acc", value=1.0, bogus=1)], DataError, r"^evals: unknown column 'bogus'"),
        ("evals", [dict(run_id="a", stage="s", task=None, metric="acc", value=1.0)], DataError, r"^evals: required column 'task' has an empty value"),
    ],
)  # fmt: skip
def test_bad_table_or_column_raises_one_line_error(tmp_path: Path, table, rows, exc, match) -> None:
    with pytest.raises(exc, match=match) as info:
        store.append(tmp_path, table, rows)
    assert "\n" not in str(info.value)
    assert not (tmp_path / f"{table}.csv").exists()


def test_load_missing_table_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"runs\.csv: results table 'runs' not found") as info:
        store.load(tmp_path, "runs")
    assert str(tmp_path) in str(info.value)


def test_fixture_tables_are_schema_valid_and_match_generator(tmp_path: Path) -> None:
    import importlib.util

    fixture = Path(__file__).parents[1] / "fixtures" / "results"
    spec = importlib.util.spec_from_file_location("gen", fixture / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.write(tmp_path)
    for table in schema.TABLES:
        assert (tmp_path / f"{table}.csv").read_bytes() == (fixture / f"{table}.csv").read_bytes(), table


def test_readme_documents_every_column() -> None:
    readme = (Path(__file__).resolve().parents[2] / "results" / "README.md").read_text()
    for table, columns in schema.SCHEMAS.items():
        section = readme.split(f"## `{table}.csv`")[1].split("\n## ")[0]
        for col, dtype in columns.items():
            assert f"| `{col}` | {dtype} |" in section, f"{table}.{col} undocumented in results/README.md"


def test_a_table_cut_mid_row_is_refused(tmp_path: Path) -> None:
    store.append(tmp_path, "runs", _run_rows())
    path = store.table_path(tmp_path, "runs")
    path.write_bytes(path.read_bytes()[:-7])  # e.g. 65536 read back as 6 if the cut row were accepted
    with pytest.raises(DataError, match=r"runs\.csv: the last row is incomplete"):
        store.load(tmp_path, "runs")


def _gzip_table(path: Path) -> Path:
    packed = path.with_name(path.name + ".gz")
    packed.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return packed


def test_a_gzipped_table_is_read_and_stays_gzipped(tmp_path: Path) -> None:
    packed = _gzip_table(store.append(tmp_path, "curves", _curve_rows("a-s0-1234567", "continual", 1.0)))
    assert store.append(tmp_path, "curves", _curve_rows("b-s0-1234567", "continual", 2.0)) == packed
    assert not (tmp_path / "curves.csv").exists() and packed.read_bytes()[:2] == b"\x1f\x8b"  # gzip magic
    assert set(store.load(tmp_path, "curves")["run_id"]) == {"a-s0-1234567", "b-s0-1234567"}
    first = packed.read_bytes()
    store.append(tmp_path, "curves", _curve_rows("b-s0-1234567", "continual", 2.0))  # re-collect: same bytes
    assert packed.read_bytes() == first
    plain = tmp_path / "plain"
    store.append(plain, "curves", _curve_rows("a-s0-1234567", "continual", 1.0))
    store.append(plain, "curves", _curve_rows("b-s0-1234567", "continual", 2.0))
    assert gzip.decompress(first) == (plain / "curves.csv").read_bytes()  # the same table, only compressed


def test_a_table_in_both_forms_or_a_cut_gzip_is_refused(tmp_path: Path) -> None:
    packed = _gzip_table(store.append(tmp_path, "runs", _run_rows()))
    packed.write_bytes(packed.read_bytes()[:-9])
    with pytest.raises(DataError, match=r"runs\.csv\.gz: unreadable gzip"):
        store.load(tmp_path, "runs")
    plain = store.append(tmp_path / "both", "runs", _run_rows())
    rows = plain.read_bytes()
    _gzip_table(plain)
    plain.write_bytes(rows)  # e.g. a colleague's plain copy restored beside the gzip one
    with pytest.raises(DataError, match=r"runs\.csv and .*runs\.csv\.gz: table 'runs' exists twice"):
        store.load(tmp_path / "both", "runs")
