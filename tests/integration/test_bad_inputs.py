"""Every row of the bad-input table (``tests/integration/bad_inputs.md``, linked from the README): the input
fails before any training (or evaluation) with the documented one-line message."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from conftest import compose
from hydra.errors import HydraException

from cpt_experiments.errors import CPTError
from cpt_experiments.train import train

REPO = Path(__file__).resolve().parents[2]
TABLE = Path(__file__).resolve().parent / "bad_inputs.md"
ROW = re.compile(r"^\| (\d+) \| (train|evaluate|figures) \| (.+) \| `(.+)` \|$")
ARG = re.compile(r"`([^`]*)`")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def rows() -> list[tuple[int, str, list[str], str]]:
    """(number, command, arguments, expected part of the message) of every table row."""
    out = []
    for line in TABLE.read_text().splitlines():
        if m := ROW.match(line):
            out.append((int(m.group(1)), m.group(2), ARG.findall(m.group(3)), m.group(4)))
    assert len(out) >= 150, "the bad-input table lost rows"
    assert [n for n, *_ in out] == list(range(1, len(out) + 1)), "rows are numbered 1, 2, ... in order"
    return out


def _safetensors(path: Path, declared: int, written: int) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [declared // 4], "data_offsets": [0, declared]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * written)


@pytest.fixture(scope="module")
def files(tmp_path_factory, data_dir) -> dict[str, str]:
    """The files the placeholders ``{name}`` of the table stand for."""
    root = tmp_path_factory.mktemp("bad_files")
    wiki = (data_dir / "A_en_wikipedia.jsonl").read_text().splitlines()
    same = [json.dumps({**json.loads(line), "id": "same"}) for line in wiki]
    (root / "same_ids.jsonl").write_text("\n".join(same) + "\n")
    lone = '{"id": "x", "text": "half a pair \\ud800 here"}'  # the JSON escape, as a file holds it
    (root / "surrogate.jsonl").write_text("\n".join([*wiki[:2], lone, *wiki[2:20]]) + "\n")
    (root / "dir").mkdir()
    (root / "file").write_text("not a folder\n")
    for name, setup in {
        "ckpt_trunc": lambda d: _safetensors(d / "model.safetensors", 64, 10),
        "ckpt_bin": lambda d: (d / "pytorch_model.bin").write_bytes(b"\x80\x04pickle"),
        "ckpt_noweights": lambda d: None,
        "ckpt_header": lambda d: (d / "model.safetensors").write_bytes(b"\x05\x00"),
    }.items():
        (root / name).mkdir()
        (root / name / "config.json").write_text("{}")
        setup(root / name)
    header = "run_id,experiment,stage,status\n"
    tables = {
        "cut_runs": {"runs.csv": header + "r,x,a,done\nr,x,b,do"},
        "cut_evals": {"runs.csv": header, "evals.csv": "run_id,stage,task,metric,value\nr,a,t,acc,0."},
        "unknown_column": {"runs.csv": "run_id,experiment,stage,status,colour\nr,x,a,done,red\n"},
        "bad_status": {"runs.csv": header + "r,x,a,finished\n"},
        "empty_required": {"runs.csv": header + "r,,a,done\n"},
        "bad_number": {"runs.csv": "run_id,experiment,stage,status,steps\nr,x,a,done,many\n"},
        "binary_runs": {"runs.csv": "\udcff"},
        "no_tables": {},
        "cut_curves_gz": {"runs.csv": header, "curves.csv.gz": "\x1f\x8b\x08cut"},
        "both_forms": {"runs.csv": header, "curves.csv": "", "curves.csv.gz": ""},
    }
    for name, content in tables.items():
        (root / name).mkdir()
        for file, text in content.items():
            (root / name / file).write_bytes(text.encode("utf-8", "surrogateescape"))
    for name, text in {"empty.jsonl": "", "garbage.jsonl": "{not json\n", "no_text.jsonl": '{"body": "x"}\n'}.items():
        (root / name).write_text(text)
    return {p.name.replace(".", "_"): str(p) for p in root.iterdir()}


@pytest.mark.parametrize(("number", "command", "args", "expected"), rows(), ids=[f"{r[0]}-{r[1]}" for r in rows()])
def test_bad_input_fails_before_any_work_with_one_line(
    tmp_path, data_dir, smoke_cache, files, number, command, args, expected
) -> None:
    names = {**files, "tmp": str(tmp_path), "data": str(data_dir)}

    def fill(text: str) -> str:  # {name} placeholders only: `{en_old: 0.5}` and `${...}` stay as they are
        return PLACEHOLDER.sub(lambda m: names.get(m.group(1), m.group(0)), text)

    args, expected = [fill(a) for a in args if a.strip()], fill(expected)
    paths = [f"paths.data_dir={data_dir}", f"paths.output_dir={tmp_path}", f"paths.cache_dir={smoke_cache}"]
    if command == "figures":
        from cpt_experiments.figures.__main__ import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main([*args, "--out", str(tmp_path / "figures")])
        lines = err.getvalue().strip().splitlines()
        assert code == 2 and len(lines) == 1 and expected in lines[0], err.getvalue()
        return
    base = ["experiment=quickstart", "scale=smoke"] if command == "train" else []
    try:
        cfg = compose(*[*base, *paths, *args], config_name="train" if command == "train" else "evaluate")
    except HydraException as exc:  # types, unknown keys and missing presets: Hydra's own message
        assert expected in f"{exc} {exc.__cause__}"
        return
    with pytest.raises(CPTError) as err:
        if command == "train":
            train(cfg)
        else:
            from cpt_experiments.pipeline.evaluation import evaluate

            evaluate(cfg)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert not any((tmp_path / "stages").glob("*/done.json")), "a stage trained before the error"
    assert not (tmp_path / "results" / "evals.csv").exists(), "an evaluation ran before the error"
