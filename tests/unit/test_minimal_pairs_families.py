"""Task families (``eval.task_families``): one lm-eval task per benchmark file, groups per field, and the
errors for malformed family YAMLs and files; rendering only (lm-eval runs them in the integration tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cpt_experiments.errors import DataError
from cpt_experiments.eval.task_families import FunctionRef, load_yaml, parse_family, render_family, slug
from cpt_experiments.eval.task_resolution import TASK_TEMPLATE_DIR

FAMILY = """\
family: cpt_pairs
files: pairs/*.jsonl
subgroup_by: field
task:
  dataset_path: json
  output_type: multiple_choice
  test_split: test
  doc_to_text: ""
  doc_to_choice: !function utils.choices
  metric_list:
    - metric: acc
group:
  aggregate_metric_list:
    - metric: acc
      weight_by_size: false
"""


def _write_pairs(root: Path, name: str, field: str, n: int = 2) -> Path:
    path = root / "pairs" / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"sentence_good": f"good {i}", "sentence_bad": f"bad {i}", "field": field} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _render(root: Path, text: str = FAMILY) -> dict[str, dict]:
    return {name: load_yaml(body) for name, body in render_family(parse_family(text, "f.yaml"), root).items()}


def test_one_task_per_file_and_a_group_per_field(tmp_path: Path) -> None:
    a = _write_pairs(tmp_path, "agreement", "morphology")
    _write_pairs(tmp_path, "island", "syntax")
    _write_pairs(tmp_path, "binding_2", "syntax/semantics")  # BLiMP's one odd spelling of syntax_semantics
    _write_pairs(tmp_path, "binding_1", "syntax_semantics")
    docs = _render(tmp_path)
    assert set(docs) == {
        "cpt_pairs_agreement.yaml",
        "cpt_pairs_island.yaml",
        "cpt_pairs_binding_1.yaml",
        "cpt_pairs_binding_2.yaml",
        "cpt_pairs_field_morphology.yaml",
        "cpt_pairs_field_syntax.yaml",
        "cpt_pairs_field_syntax_semantics.yaml",
        "cpt_pairs.yaml",
    }
    member = docs["cpt_pairs_agreement.yaml"]
    assert member["task"] == "cpt_pairs_agreement"
    assert member["dataset_kwargs"] == {"data_files": {"test": str(a.resolve())}}
    assert member["doc_to_choice"] == FunctionRef("utils.choices")  # the hook survives the round trip
    assert member["doc_to_text"] == "" and member["output_type"] == "multiple_choice"
    assert docs["cpt_pairs_field_syntax_semantics.yaml"]["task"] == ["cpt_pairs_binding_1", "cpt_pairs_binding_2"]
    top = docs["cpt_pairs.yaml"]
    assert top["group"] == "cpt_pairs" and top["aggregate_metric_list"] == [{"metric": "acc", "weight_by_size": False}]
    assert top["task"] == ["cpt_pairs_field_morphology", "cpt_pairs_field_syntax", "cpt_pairs_field_syntax_semantics"]


def test_function_tag_is_written_back_as_a_tag(tmp_path: Path) -> None:
    _write_pairs(tmp_path, "x", "syntax")
    text = render_family(parse_family(FAMILY, "f.yaml"), tmp_path)["cpt_pairs_x.yaml"]
    assert "doc_to_choice: !function 'utils.choices'" in text or "doc_to_choice: !function utils.choices" in text
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load(text)  # i.e. it is the tag lm-eval's loader resolves, not a plain string


def test_without_subgroups_the_group_lists_the_members(tmp_path: Path) -> None:
    _write_pairs(tmp_path, "obj", "syntax")
    _write_pairs(tmp_path, "nsubj", "syntax")
    docs = _render(tmp_path, FAMILY.replace("subgroup_by: field\n", ""))
    assert set(docs) == {"cpt_pairs_nsubj.yaml", "cpt_pairs_obj.yaml", "cpt_pairs.yaml"}
    assert docs["cpt_pairs.yaml"]["task"] == ["cpt_pairs_nsubj", "cpt_pairs_obj"]


def test_no_files_renders_nothing(tmp_path: Path) -> None:
    assert _render(tmp_path) == {}


@pytest.mark.parametrize(
    "text, message",
    [
        ("family: x\nfiles: a/*.jsonl\n", r"f\.yaml: a task family needs family, files, task"),
        (FAMILY + "extra: 1\n", r"f\.yaml: a task family needs"),
        (FAMILY.replace("family: cpt_pairs", "family: cpt-pairs"), r"f\.yaml: family name 'cpt-pairs'"),
        (FAMILY.replace("  test_split: test\n", ""), r"f\.yaml: family task keys must be a mapping with test_split"),
        ("family: [unclosed\n", r"f\.yaml: not valid YAML"),
    ],
)
def test_malformed_family_is_one_line_naming_the_file(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as err:
        parse_family(text, "f.yaml")
    assert "\n" not in str(err.value)


def test_bad_member_files_name_the_file(tmp_path: Path) -> None:
    family = parse_family(FAMILY, "f.yaml")
    bad_name = _write_pairs(tmp_path, "has-dash", "syntax")
    with pytest.raises(DataError, match=r"has-dash\.jsonl: file name must match"):
        render_family(family, tmp_path)
    bad_name.unlink()
    no_field = tmp_path / "pairs" / "nofield.jsonl"
    no_field.write_text(json.dumps({"sentence_good": "a", "sentence_bad": "b"}) + "\n")
    with pytest.raises(DataError, match=r"nofield\.jsonl: no field 'field'"):
        render_family(family, tmp_path)
    no_field.write_text("not json\n")
    with pytest.raises(DataError, match=r"nofield\.jsonl: first line is not a JSON object"):
        render_family(family, tmp_path)


def test_slug() -> None:
    assert slug("syntax/semantics") == "syntax_semantics"
    assert slug("Syntax-Semantics ") == "syntax_semantics"
    assert slug("") == "none"


SHIPPED_FAMILIES = [p for p in sorted(TASK_TEMPLATE_DIR.glob("*.yaml")) if "family" in load_yaml(p.read_text())]


def test_minimal_pair_families_are_shipped() -> None:
    assert {"cpt_blimp.yaml", "cpt_multiblimp_de.yaml"} <= {p.name for p in SHIPPED_FAMILIES}


@pytest.mark.parametrize("path", SHIPPED_FAMILIES, ids=lambda p: p.name)
def test_shipped_families_parse(path: Path) -> None:
    family = parse_family(path.read_text(), path.name)
    assert family.name == path.stem and family.task["output_type"] == "multiple_choice"
    assert family.task["doc_to_text"] == "" and family.task["doc_to_target"] == 0  # stock BLiMP scoring
