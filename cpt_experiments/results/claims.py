"""Paper 1's claims as paired comparisons of the paper-1 presets, each beside the paper's own number.

Every row is one comparison: model A − model B on one domain kind (old, new, avg), seed by seed
(``comparisons.paired``), in nats/token and bits per byte, or a cost ratio read from the runs table. The
paper's values are from ../shared/reference/papers.md, Part A (A7 tables, A10 claims; all tagged [V]), as
the difference the same comparison gives there (405M model, nats/token). Comparisons whose runs are not in
the results are left out, so a partial reproduction gives a partial table. The verdicts are a reader's
judgement and live in results/cpu/paper1/README.md, next to these numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cpt_experiments.errors import DataError
from cpt_experiments.results import comparisons, dynamics, store, verdicts

#: Paper 1's 405M final losses (nats/token) used below, as (Pile = D0, D1[, AVG as printed in Table 2]): Pile
#: after pre-training, and per shift the re-warm runs (LR-schedule table), the replay sweep (Table 2, re-warm
#: to 3e-4), the constant-η_min run, the union and the D1-only scratch model.
PAPER = {
    "pile_pretrained": 2.17,
    "weak": {"constant": (2.42, 2.55), "rewarm": {0.5: (2.43, 2.51), 1.0: (2.44, 2.50), 2.0: (2.48, 2.50)},
             "replay": {0.0: (2.44, 2.50, 2.47), 0.005: (2.27, 2.50, 2.39), 0.01: (2.26, 2.50, 2.38),
                        0.05: (2.23, 2.51, 2.37), 0.1: (2.21, 2.51, 2.36), 0.5: (2.16, 2.54, 2.35)},
             "union": (2.17, 2.53, 2.35), "new_only": (2.51, 2.53), "chosen": 0.05, "compute": 0.5},
    "strong": {"constant": (3.22, 1.21), "rewarm": {0.5: (3.47, 1.13), 1.0: (3.56, 1.11), 2.0: (3.63, 1.11)},
               "replay": {0.0: (3.56, 1.11, 2.34), 0.01: (2.83, 1.12, 1.97), 0.05: (2.57, 1.12, 1.85),
                          0.1: (2.46, 1.13, 1.80), 0.25: (2.33, 1.16, 1.75), 0.5: (2.24, 1.22, 1.73)},
               "union": (2.26, 1.25, 1.75), "new_only": (3.97, 1.17), "chosen": 0.25, "compute": 0.4},
}  # fmt: skip
SHIFTS = ("weak", "strong")
KINDS = {"old": 0, "new": 1}


@dataclass(frozen=True)
class Row:
    """One comparison: A − B on ``kind`` (old | new | avg), and the paper's value of the same difference.

    ``group`` names the README claims-table row the comparison belongs to (its verdict combines the
    group's rows, ``verdicts.combine``), ``label`` tells the comparison apart inside that row, and
    ``sense`` is how the rule reads the paper's statement (``verdicts.SENSES``)."""

    claim: str
    comparison: str
    a: comparisons.Selector
    b: comparisons.Selector
    kind: str
    paper: float
    group: str
    label: str
    sense: str = "sign"
    domain: str | None = None  # compare on this validation domain instead of the ``kind``


def _paper_diff(a: tuple[float, ...], b: tuple[float, ...], kind: str) -> float:
    """A − B in the paper; AVG from its printed column where both have one, else (D0 + D1) / 2."""
    if kind == "avg":
        avg = [x[2] if len(x) > 2 else (x[0] + x[1]) / 2 for x in (a, b)]
        return avg[0] - avg[1]
    return a[KINDS[kind]] - b[KINDS[kind]]


def _stage(experiment: str, variant: str, stage: str) -> comparisons.Selector:
    return {"experiment": experiment, "variant": variant, "stage": stage}


def _rewarm_variants(fin: pd.DataFrame, shift: str) -> dict[float, str]:
    """η_max -> variant of the paper1_rewarm re-warm runs of one shift, from the recorded columns: the continual
    stages whose schedule re-warms (not the constant-η_min one) and the peak LR the run recorded (``eta_max``)."""
    part = fin[(fin["experiment"] == "paper1_rewarm") & (fin["shift"] == shift) & (fin["role"] == "continual")]
    part = part[part["schedule"] != "constant"].drop_duplicates("variant")
    return {float(eta): str(v) for eta, v in zip(part["eta_max"], part["variant"])}


def _pct(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def rows(fin: pd.DataFrame, eta_max: float) -> Iterator[Row]:
    """Every comparison of the claims table; ``eta_max`` is the pre-training peak at this scale (1× re-warm)."""
    pre = PAPER["pile_pretrained"]
    for shift in SHIFTS:
        p, k = PAPER[shift], shift[0]
        zero = _stage("paper1_replay", f"{shift}-replay0.0", "continual")
        # The union does not depend on the replay ratio (one stage hash per shift and seed), so every ratio is
        # paired with the 0% run's: a ratio run may skip the union (experiment.union=null) once it is trained.
        union = _stage("paper1_replay", f"{shift}-replay0.0", "union")
        const = _stage("paper1_rewarm", f"{shift}-constant-eta_min", "continual")
        for kind in ("new", "old"):
            yield Row("1 re-warm vs constant η_min", f"{shift}: re-warm 1× − constant, {kind}", zero, const, kind,
                      _paper_diff(p["rewarm"][1.0], p["constant"], kind), f"{k}1-{kind}", kind)  # fmt: skip
        # 1× is the 0% replay run where the re-warm sweep did not run it itself (same schedule, same data).
        peaks = {1.0: zero} | {
            f: _stage("paper1_rewarm", v, "continual")
            for eta, v in _rewarm_variants(fin, shift).items()
            if (f := round(eta / eta_max, 3)) in p["rewarm"]
        }
        for factor in sorted(peaks):
            yield Row("2 η_max trade-off", f"{shift}: new-domain loss {factor:g}× − constant", peaks[factor], const,
                      "new", p["rewarm"][factor][1] - p["constant"][1], f"{k}2-adapt", f"{factor:g}×")  # fmt: skip
        # "A higher peak forgets more" is a difference between peaks (same pre-trained model per seed).
        for lo, hi in ((0.5, 1.0), (1.0, 2.0), (0.5, 2.0)):
            if lo in peaks and hi in peaks:
                yield Row("2 η_max trade-off", f"{shift}: old-domain loss {hi:g}× − {lo:g}× η_max", peaks[hi],
                          peaks[lo], "old", p["rewarm"][hi][0] - p["rewarm"][lo][0], f"{k}2-forget",
                          f"{hi:g}× − {lo:g}×")  # fmt: skip
        for ratio, (old, *_rest) in sorted(p["replay"].items()):
            variant = f"{shift}-replay{ratio}"
            yield Row("3 forgetting and replay", f"{shift}: forgetting at {ratio:.1%} replay",
                      _stage("paper1_replay", variant, "continual"), _stage("paper1_replay", variant, "pretrain"),
                      "old", old - pre, f"{k}3-replay" if ratio else f"{k}3-none", _pct(ratio))  # fmt: skip
            if ratio > 0:
                yield Row("4 replay costs little on D1", f"{shift}: {ratio:.1%} − 0% replay, new",
                          _stage("paper1_replay", variant, "continual"), zero, "new",
                          p["replay"][ratio][1] - p["replay"][0.0][1], f"{k}4-cost", _pct(ratio), "at most")  # fmt: skip
            yield Row("5 replay reaches union", f"{shift}: {ratio:.1%} replay − union, AVG",
                      _stage("paper1_replay", variant, "continual"), union, "avg",
                      _paper_diff(p["replay"][ratio], p["union"], "avg"), f"{k}5-union", _pct(ratio),
                      "at most")  # fmt: skip
        final = f"{shift}-replay{p['chosen']}"
        for kind in ("old", "new", "avg"):
            yield Row("6 final comparison", f"{shift}: CPT {p['chosen']:.0%} replay − union, {kind}",
                      _stage("paper1_final", final, "continual"), _stage("paper1_final", final, "union"), kind,
                      _paper_diff(p["replay"][p["chosen"]], p["union"], kind), f"{k}6-{kind}", kind,
                      "at most" if kind == "avg" else "sign")  # fmt: skip
        for kind in ("old", "new"):
            yield Row("7 new data only from scratch", f"{shift}: D1-only scratch − CPT 0% replay, {kind}",
                      _stage("paper1_final", final, "new_only"), zero, kind,
                      _paper_diff(p["new_only"], p["replay"][0.0], kind), f"{k}7-scratch", kind)  # fmt: skip
    # Fig. 10 gives curves, not a table: "all schedules reach similar loss" (no number: A − B ≤ 0 + tolerance).
    for shape in ("cosine", "inverse_sqrt"):
        for i in (1, 2, 3):
            yield Row("10 infinite ≈ repeated cosine", f"split {i}: infinite ({shape}) release − repeated cosine",
                      _stage("paper1_infinite_splits", f"infinite-{shape}", f"s{i}_anneal"),
                      _stage("paper1_cosine_splits", "repeated-cosine", f"s{i}"), "new", float("nan"),
                      f"10-{shape}", f"split {i}", "at most", f"s{i}")  # fmt: skip


def pretraining_peak(runs: pd.DataFrame) -> float:
    """η_max of the paper-1 pre-training stages (stage ``pretrain``): the 1× of the re-warm sweep."""
    pre = runs[runs["experiment"].astype(str).str.startswith("paper1_") & (runs["stage"] == "pretrain")]
    peaks = pre["eta_max"].dropna().unique()
    if len(peaks) != 1:
        raise DataError(f"runs: paper-1 pretrain stages have {len(peaks)} distinct eta_max values ({sorted(peaks)}); "
                        "select one scale")  # fmt: skip
    return float(peaks[0])


#: Columns of the claims table (``table``, ``other``): the comparison, the paper's value, ours in nats (and bpb),
#: the 95% interval, how the rule reads the claim and its verdict, and a note where the measures differ.
COLUMNS = ["claim", "comparison", "group", "label", "paper", "ours", "ours_std", "ours_bpb", "ours_bpb_std", "n",
           "seeds", "lo", "hi", "sense", "verdict", "note"]  # fmt: skip


def _judged(row: dict) -> dict:
    """``row`` with the 95% interval and the rule's verdict (``verdicts.verdict``)."""
    row["lo"], row["hi"] = verdicts.interval(row["ours"], row["ours_std"], int(row["n"]))
    row["verdict"] = verdicts.verdict(row["ours"], row["ours_std"], int(row["n"]), sense=row["sense"],
                                      paper=row["paper"])  # fmt: skip
    return {c: row.get(c, "" if c == "note" else float("nan")) for c in COLUMNS}


def table(fin: pd.DataFrame, eta_max: float) -> pd.DataFrame:
    """The claims table: per comparison present in ``fin``, ours (mean, std, n over paired seeds; nats and
    bpb) beside the paper's difference, with the 95% interval and the verdict (columns ``COLUMNS``)."""
    out = []
    for r in rows(fin, eta_max):
        try:
            d = comparisons.paired(fin, r.a, r.b)
        except DataError:  # not run (yet): the table says only what the results hold
            continue
        d = d[d["domain"] == r.domain] if r.domain else d[d["kind"] == r.kind]
        if d.empty:
            continue
        x = d.iloc[0]
        out.append(_judged({"claim": r.claim, "comparison": r.comparison, "group": r.group, "label": r.label,
                            "paper": round(r.paper, 3), "ours": x["diff_loss"], "ours_std": x["diff_loss_std"],
                            "ours_bpb": x.get("diff_bpb", float("nan")), "sense": r.sense,
                            "ours_bpb_std": x.get("diff_bpb_std", float("nan")), "n": x["n"], "seeds": x["seeds"]}))  # fmt: skip
    return pd.DataFrame(out, columns=COLUMNS)


#: The LM-eval claim (Table 3: CPT ≈ union on evaluations; accuracy as a fraction): the paper's benchmark and
#: CPT − union per shift, and ours (task names of evals.csv). Ours are other benchmarks, which each row says.
PAPER_EVALS = {"strong": ("HellaSwag-DE", 0.3104 - 0.3045), "weak": ("the English evaluation average", 0.3514 - 0.3430)}
OUR_EVALS = {"cpt_multiblimp_de": "German word-order pairs", "cpt_blimp": "BLiMP"}


def other(fin: pd.DataFrame, curves: pd.DataFrame, runs: pd.DataFrame, evals: pd.DataFrame | None) -> pd.DataFrame:
    """The claims that are not final-loss differences (columns ``COLUMNS``): benchmark accuracy CPT − union
    (seed-paired, parity), the peak rise of re-warming on the same data (claim 9, ``dynamics``) and the cost
    ratios of claim 8 (by construction)."""
    out = []
    for shift in SHIFTS:
        p, final = PAPER[shift], f"{shift}-replay{PAPER[shift]['chosen']}"
        a, b = _stage("paper1_final", final, "continual"), _stage("paper1_final", final, "union")
        bench, paper = PAPER_EVALS[shift]
        for task, name in OUR_EVALS.items() if evals is not None else ():
            try:
                d = comparisons.evals_paired(evals, runs, a, b, task)
            except DataError:
                continue
            out.append(_judged({"claim": "LM eval", "comparison": f"{shift}: CPT − union, {name} accuracy",
                                "group": f"{shift[0]}-lmeval", "label": name, "paper": round(paper, 4),
                                "ours": d["diff"], "ours_std": d["diff_std"], "n": d["n"], "seeds": d["seeds"],
                                "sense": "parity", "note": f"other benchmark: ours {name}, the paper {bench}"}))  # fmt: skip
        c = compute(fin)
        for q in c[(c["shift"] == shift) & c["quantity"].isin(["stage_tokens", "stage_flops"])].itertuples():
            out.append({"claim": "8 compute", "comparison": f"{shift}: CPT stage / union, {q.quantity}",
                        "group": f"{shift[0]}8-cost", "label": q.quantity, "paper": p["compute"], "ours": q.ratio,
                        "n": q.n, "sense": "sign", "verdict": "by construction", "note": "a ratio, not a difference"})  # fmt: skip
    try:
        rise = dynamics.rise_table(curves, runs, "paper1_same_data").set_index("variant")
    except DataError:
        rise = pd.DataFrame()
    for factor, paper in ((1.0, 0.1), (2.0, 0.2)):
        v = f"same-rewarm-{factor * pretraining_peak(runs):g}"
        if v in rise.index:
            x = rise.loc[v]
            out.append(_judged({"claim": "9 re-warming on the same data", "comparison": f"peak rise at {factor:g}×",
                                "group": "9-same", "label": f"{factor:g}×", "paper": paper, "ours": x["peak_rise"],
                                "ours_std": x["peak_rise_std"], "n": x["n"], "sense": "sign",
                                "note": "peak of the old-domain loss after the boundary − the parent's last value"}))  # fmt: skip
    return pd.DataFrame([{c: r.get(c, float("nan")) for c in COLUMNS} for r in out], columns=COLUMNS)


def claims_table(results_dir: Path) -> pd.DataFrame:
    """``table`` and ``other`` of the tables in ``results_dir``: every judged comparison of paper 1."""
    runs, curves = store.load(results_dir, "runs"), store.load(results_dir, "curves")
    evals = store.load(results_dir, "evals") if store.table_path(results_dir, "evals").is_file() else None
    fin = comparisons.finals(curves, runs)
    return pd.concat([table(fin, pretraining_peak(runs)), other(fin, curves, runs, evals)], ignore_index=True)


def compute(fin: pd.DataFrame) -> pd.DataFrame:
    """Claim 8: what each shift's final CPT model cost against its union baseline (tokens, FLOPs, wall time),
    beside the paper's token ratio (0.5× weak, 0.4× strong). Columns: shift, quantity, cpt, union, ratio, paper, n."""
    frames = []
    for shift in SHIFTS:
        p = PAPER[shift]
        final = f"{shift}-replay{p['chosen']}"
        try:
            c = comparisons.cost(
                fin, _stage("paper1_final", final, "continual"), _stage("paper1_final", final, "union")
            )
        except DataError:
            continue
        c = c.rename(columns={"a": "cpt", "b": "union"}).assign(shift=shift, paper=float("nan"))
        c.loc[c["quantity"].isin(["stage_tokens", "stage_flops"]), "paper"] = p["compute"]
        frames.append(c)
    cols = ["shift", "quantity", "cpt", "union", "ratio", "paper", "n"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
