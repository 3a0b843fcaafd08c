"""Paper 2's released models per version on hand-made runs/curves: own domain, dedup, seeds, paired differences."""

from __future__ import annotations

import pandas as pd
import pytest

from cpt_experiments.errors import DataError
from cpt_experiments.results import releases


def _stage(exp, variant, stage, role, version, seed, h, loss, run=None, status="done", scale="cpu"):
    run = run or f"{exp}-s{seed}"
    row = dict(run_id=run, experiment=exp, variant=variant, stage=stage, role=role, version=version, seed=seed,
               stage_hash=h, status=status, scale=scale, old_domain="v1", new_domain="vx")  # fmt: skip
    curves = [
        dict(run_id=run, stage=stage, step=step, tokens=step, split=dom, metric=m, value=value)
        for step, scale_by in ((5, 2.0), (10, 1.0))  # the last validation step counts, not the first
        for dom, off in ((f"v{version}", 0.0), ("vx", 5.0), ("de_new", 5.0))  # only split v<version> counts
        for m, value in (("loss", scale_by * loss + off), ("bpb", scale_by * loss / 2 + off))
    ]
    return row, curves


def _tables(rows):
    return pd.DataFrame([r for r, _ in rows]), pd.DataFrame([c for _, cs in rows for c in cs])


def _stream():
    rows = []
    for seed, noise in ((0, 0.0), (1, 0.2)):
        for v in (1, 2):
            rows.append(_stage("ptfs", "ptfs-cosine", f"v{v}", "ptfs", v, seed, f"p{v}s{seed}", 4.0 - v + noise))
            # CPT v1 is PTFS v1 (same stage_hash, reused): it counts for CPT too.
            h = f"p1s{seed}" if v == 1 else f"c{v}s{seed}"
            rows.append(_stage("cpt_rewarm", "cpt_rewarm", f"v{v}", "cpt", v, seed, h, 4.0 - v + noise + 0.1 * (v - 1),
                               status="reused" if v == 1 else "done"))  # fmt: skip
            rows.append(_stage("path_switching", "ps-cosine-f20", f"main_v{v}", "main", v, seed, f"m{v}s{seed}", 9.0))
            rows.append(_stage("path_switching", "ps-cosine-f20", f"branch_v{v}", "branch", v, seed, f"b{v}s{seed}",
                               4.0 - v + noise + 0.05))  # fmt: skip
    # a second run of path switching reusing seed 0's branches: one measurement, not two
    rows.append(_stage("path_switching", "ps-cosine-f20", "branch_v1", "branch", 1, 0, "b1s0", 3.05, run="ps-again",
                       status="reused"))  # fmt: skip
    return _tables(rows)


def test_released_reads_the_last_step_of_the_own_domain_and_skips_the_main_path():
    runs, curves = _stream()
    rel = releases.released(curves, runs)
    assert set(rel["experiment"]) == {"ptfs", "cpt_rewarm", "path_switching"}
    assert not rel["stage"].str.startswith("main").any()
    p = rel[(rel["experiment"] == "ptfs") & (rel["seed"] == 0)].set_index("version")
    assert p.loc[1, "loss"] == 3.0 and p.loc[2, "loss"] == 2.0 and p.loc[2, "bpb"] == 1.0
    assert len(rel[rel["experiment"] == "path_switching"]) == 4  # the reused branch once


def test_table_is_mean_and_seed_std_per_strategy_and_version():
    runs, curves = _stream()
    tab = releases.table(releases.released(curves, runs)).set_index(["experiment", "version"])
    assert tab.loc[("ptfs", 2), "loss"] == pytest.approx(2.1) and tab.loc[("ptfs", 2), "n"] == 2
    assert tab.loc[("ptfs", 2), "loss_std"] == pytest.approx(pd.Series([2.0, 2.2]).std())
    assert tab.loc[("cpt_rewarm", 1), "loss"] == tab.loc[("ptfs", 1), "loss"]  # the shared stage counts for both
    one = releases.table(releases.released(curves, runs[runs["seed"] == 0]))
    assert one["loss_std"].isna().all() and (one["n"] == 1).all()  # one seed: no error bar


def test_paired_difference_is_seed_by_seed():
    runs, curves = _stream()
    rel = releases.released(curves, runs)
    d = releases.paired(rel, ("cpt_rewarm", "cpt_rewarm"), ("ptfs", "ptfs-cosine")).set_index("version")
    assert d.loc[1, "diff"] == pytest.approx(0.0) and d.loc[2, "diff"] == pytest.approx(0.1)
    assert d.loc[2, "diff_std"] == pytest.approx(0.0) and d.loc[2, "n"] == 2 and d.loc[2, "seeds"] == "0,1"
    d1 = releases.paired(rel[rel["seed"] == 0], ("path_switching", "ps-cosine-f20"), ("ptfs", "ptfs-cosine"))
    assert d1["diff"].tolist() == pytest.approx([0.05, 0.05]) and d1["diff_std"].isna().all()


def test_configurations_and_seeds_are_never_pooled():
    runs, curves = _stream()
    other_scale = runs[runs["experiment"] == "ptfs"].assign(run_id=lambda d: d["run_id"] + "-smoke", scale="smoke",
                                                            stage_hash=lambda d: d["stage_hash"] + "x", seed=7)  # fmt: skip
    more = curves[curves["run_id"].str.startswith("ptfs")].assign(run_id=lambda d: d["run_id"] + "-smoke")
    with pytest.raises(DataError, match="mixes 2 configurations"):
        releases.table(releases.released(pd.concat([curves, more]), pd.concat([runs, other_scale])))
    twin = runs[runs["experiment"] == "ptfs"].assign(
        run_id=lambda d: d["run_id"] + "-b", stage_hash=lambda d: d["stage_hash"] + "b"
    )
    with pytest.raises(DataError, match="two stages with seed"):
        releases.table(releases.released(pd.concat([curves, more.assign(run_id=lambda d: d["run_id"].str.replace("-smoke", "-b"))]),
                                         pd.concat([runs, twin])))  # fmt: skip


def test_bad_inputs_are_one_line_errors():
    runs, curves = _stream()
    with pytest.raises(DataError, match="no finished stage"):
        releases.released(curves, runs[runs["role"] == "main"])
    with pytest.raises(DataError, match="no 'version'"):
        releases.released(curves, runs.assign(version=lambda d: d["version"].where(d["role"] != "ptfs")))
    # Branches of an experiment without versions (paper 1's infinite-schedule anneals) are not paper-2 releases.
    paper1 = runs[runs["role"] == "branch"].assign(experiment="paper1_infinite_splits", version=float("nan"))
    assert set(releases.released(curves, pd.concat([runs, paper1]))["experiment"]) == set(
        releases.released(curves, runs)["experiment"]
    )
    with pytest.raises(DataError, match="no released stages of nope/x"):
        releases.paired(releases.released(curves, runs), ("nope", "x"), ("ptfs", "ptfs-cosine"))


def test_each_strategy_is_compared_with_ptfs_of_its_family():
    assert [releases.family(v) for v in ("ptfs-knee", "ps-multistep-f20", "cpt_rewarm", "ps-cosine-f10")] == [
        "knee", "multistep", "cosine", "cosine"
    ]  # fmt: skip
    runs, curves = _stream()
    knee = _stage("ptfs", "ptfs-knee", "v2", "ptfs", 2, 0, "k2", 1.5, run="ptfs-knee-s0")
    ps_knee = _stage("path_switching", "ps-knee-f20", "branch_v2", "branch", 2, 0, "kb2", 1.75, run="ps-knee-s0")
    more_runs, more_curves = _tables([knee, ps_knee])
    rel = releases.released(pd.concat([curves, more_curves]), pd.concat([runs, more_runs]))
    out = releases.against_ptfs(rel).set_index(["variant", "version"])
    assert out.loc[("ps-knee-f20", 2), "baseline"] == "ptfs-knee" and out.loc[("ps-knee-f20", 2), "diff"] == 0.25
    assert out.loc[("ps-cosine-f20", 2), "baseline"] == "ptfs-cosine"
    assert out.loc[("cpt_rewarm", 2), "n"] == 2
