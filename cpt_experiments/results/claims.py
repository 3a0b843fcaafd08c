"""Paper 1's claims as paired comparisons of the paper-1 presets, each beside the paper's own number.

Every row is one comparison: model A − model B on one domain kind (old, new, avg), seed by seed
(``comparisons.paired``), in nats/token and bits per byte, or a cost ratio read from the runs table. The
paper's values are from ../shared/reference/papers.md, Part A (A7 tables, A10 claims; all tagged [V]), as
the difference the same comparison gives there (405M model, nats/token). Comparisons whose runs are not in
the results are left out, so a partial reproduction gives a partial table. The verdicts are a reader's
judgement and live in results/cpu/paper1/README.md, next to these numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd

from cpt_experiments.errors import DataError
from cpt_experiments.results import comparisons

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
    """One comparison: A − B on ``kind`` (old | new | avg), and the paper's value of the same difference."""

    claim: str
    comparison: str
    a: comparisons.Selector
    b: comparisons.Selector
    kind: str
    paper: float
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
    """η_max -> variant of the paper1_rewarm re-warm runs of one shift ("weak-rewarm-0.002")."""
    out = {}
    for v in fin.loc[fin["experiment"] == "paper1_rewarm", "variant"].unique():
        m = re.fullmatch(rf"{shift}-rewarm-([0-9.e+-]+)", str(v))
        if m:
            out[float(m.group(1))] = str(v)
    return out


def rows(fin: pd.DataFrame, eta_max: float) -> Iterator[Row]:
    """Every comparison of the claims table; ``eta_max`` is the pre-training peak at this scale (1× re-warm)."""
    pre = PAPER["pile_pretrained"]
    for shift in SHIFTS:
        p = PAPER[shift]
        zero = _stage("paper1_replay", f"{shift}-replay0.0", "continual")
        # The union does not depend on the replay ratio (one stage hash per shift and seed), so every ratio is
        # paired with the 0% run's: a ratio run may skip the union (experiment.union=null) once it is trained.
        union = _stage("paper1_replay", f"{shift}-replay0.0", "union")
        const = _stage("paper1_rewarm", f"{shift}-constant-eta_min", "continual")
        for kind in ("new", "old"):
            yield Row("1 re-warm vs constant η_min", f"{shift}: re-warm 1× − constant, {kind}", zero, const, kind,
                      _paper_diff(p["rewarm"][1.0], p["constant"], kind))  # fmt: skip
        for eta, variant in sorted(_rewarm_variants(fin, shift).items()):
            factor = round(eta / eta_max, 3)
            if factor not in p["rewarm"]:
                continue
            a = _stage("paper1_rewarm", variant, "continual")
            b = _stage("paper1_rewarm", variant, "pretrain")
            yield Row("2 η_max trade-off", f"{shift}: forgetting at {factor:g}× η_max", a, b, "old",
                      p["rewarm"][factor][0] - pre)  # fmt: skip
            yield Row("2 η_max trade-off", f"{shift}: new-domain loss {factor:g}× − constant", a, const, "new",
                      p["rewarm"][factor][1] - p["constant"][1])  # fmt: skip
        for ratio, (old, *_rest) in sorted(p["replay"].items()):
            variant = f"{shift}-replay{ratio}"
            yield Row("3 forgetting and replay", f"{shift}: forgetting at {ratio:.1%} replay",
                      _stage("paper1_replay", variant, "continual"), _stage("paper1_replay", variant, "pretrain"),
                      "old", old - pre)  # fmt: skip
            if ratio > 0:
                yield Row("4 replay costs little on D1", f"{shift}: {ratio:.1%} − 0% replay, new",
                          _stage("paper1_replay", variant, "continual"), zero, "new",
                          p["replay"][ratio][1] - p["replay"][0.0][1])  # fmt: skip
            yield Row("5 replay reaches union", f"{shift}: {ratio:.1%} replay − union, AVG",
                      _stage("paper1_replay", variant, "continual"), union, "avg",
                      _paper_diff(p["replay"][ratio], p["union"], "avg"))  # fmt: skip
        final = f"{shift}-replay{p['chosen']}"
        for kind in ("old", "new", "avg"):
            yield Row("6 final comparison", f"{shift}: CPT {p['chosen']:.0%} replay − union, {kind}",
                      _stage("paper1_final", final, "continual"), _stage("paper1_final", final, "union"), kind,
                      _paper_diff(p["replay"][p["chosen"]], p["union"], kind))  # fmt: skip
        for kind in ("old", "new"):
            yield Row("7 new data only from scratch", f"{shift}: D1-only scratch − CPT 0% replay, {kind}",
                      _stage("paper1_final", final, "new_only"), zero, kind,
                      _paper_diff(p["new_only"], p["replay"][0.0], kind))  # fmt: skip
    # Fig. 10 gives curves, not a table: "all schedules reach similar loss" (no number to set beside ours).
    for shape in ("cosine", "inverse_sqrt"):
        for i in (1, 2, 3):
            yield Row("9 infinite ≈ repeated cosine", f"split {i}: infinite ({shape}) release − repeated cosine",
                      _stage("paper1_infinite_splits", f"infinite-{shape}", f"s{i}_anneal"),
                      _stage("paper1_cosine_splits", "repeated-cosine", f"s{i}"), "new", float("nan"), f"s{i}")  # fmt: skip


def pretraining_peak(runs: pd.DataFrame) -> float:
    """η_max of the paper-1 pre-training stages (stage ``pretrain``): the 1× of the re-warm sweep."""
    pre = runs[runs["experiment"].astype(str).str.startswith("paper1_") & (runs["stage"] == "pretrain")]
    peaks = pre["eta_max"].dropna().unique()
    if len(peaks) != 1:
        raise DataError(f"runs: paper-1 pretrain stages have {len(peaks)} distinct eta_max values ({sorted(peaks)}); "
                        "select one scale")  # fmt: skip
    return float(peaks[0])


def table(fin: pd.DataFrame, eta_max: float) -> pd.DataFrame:
    """The claims table: per comparison present in ``fin``, ours (mean, std, n over paired seeds; nats and
    bpb) beside the paper's difference. Columns: claim, comparison, paper, ours, ours_std, ours_bpb,
    ours_bpb_std, n, seeds."""
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
        out.append({"claim": r.claim, "comparison": r.comparison, "paper": round(r.paper, 3), "ours": x["diff_loss"],
                    "ours_std": x["diff_loss_std"], "ours_bpb": x.get("diff_bpb", float("nan")),
                    "ours_bpb_std": x.get("diff_bpb_std", float("nan")), "n": x["n"], "seeds": x["seeds"]})  # fmt: skip
    cols = ["claim", "comparison", "paper", "ours", "ours_std", "ours_bpb", "ours_bpb_std", "n", "seeds"]
    return pd.DataFrame(out, columns=cols)


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


#: The paper's regime for the regime axis: (union tokens per parameter, CPT − union AVG gap in nats) of the
#: 405M model: 600B tokens and 2.37 − 2.35 (weak, 5% replay); 500B tokens and 1.75 − 1.75 (strong, 25%).
PAPER_REGIME = {"weak": (600e9 / 405e6, 2.37 - 2.35), "strong": (500e9 / 405e6, 1.75 - 1.75)}


def _first(frame: pd.DataFrame, column: str) -> float:
    """The first value of ``column`` as a float (NaN when the column is absent or empty)."""
    return float(frame[column].iloc[0]) if column in frame and pd.notna(frame[column].iloc[0]) else float("nan")


def regime(fin: pd.DataFrame, experiment: str = "paper1_regime") -> pd.DataFrame:
    """The continual − union gap per point of the regime axis (each variant of ``experiment``), paired over
    seeds, with the union's tokens per parameter (its cumulative tokens / the model's parameters).

    Columns: shift, variant, model, params, params_non_embedding, tokens_per_param (per parameter, embeddings
    included), tokens_per_param_non_embedding, kind (old | new | avg), gap, gap_std, gap_bpb, gap_bpb_std, n. Raises DataError when ``experiment`` has no finished continual and union stages."""
    rows = []
    for variant in sorted(fin.loc[fin["experiment"] == experiment, "variant"].unique()):
        cont, union = _stage(experiment, variant, "continual"), _stage(experiment, variant, "union")
        try:
            d = comparisons.paired(fin, cont, union)
            u = comparisons.pick(fin, union)
        except DataError:
            continue
        params, non_embedding = (_first(u, c) for c in ("params", "params_non_embedding"))
        tokens = float(u["cumulative_tokens"].astype(float).mean())
        for x in d[d["kind"].isin(["old", "new", "avg"])].itertuples():
            rows.append({"shift": u["shift"].iloc[0], "variant": variant, "model": u["model"].iloc[0],
                         "params": params, "params_non_embedding": non_embedding, "tokens_per_param": tokens / params,
                         "tokens_per_param_non_embedding": tokens / non_embedding, "kind": x.kind, "gap": x.diff_loss,
                         "gap_std": x.diff_loss_std, "gap_bpb": getattr(x, "diff_bpb", float("nan")),
                         "gap_bpb_std": getattr(x, "diff_bpb_std", float("nan")), "n": x.n})  # fmt: skip
    if not rows:
        raise DataError(f"runs: no finished continual and union stages of {experiment} (the regime axis)")
    return pd.DataFrame(rows).sort_values(["shift", "kind", "tokens_per_param"]).reset_index(drop=True)


#: German share of the new data of each shift-continuum point (conf/shift/{weak,mix25,mix50,mix75,strong}.yaml).
GERMAN_SHARE = {"weak": 0.0, "mix25": 0.25, "mix50": 0.5, "mix75": 0.75, "strong": 1.0}


def _mix(vals: pd.Series, stage: str, german: float) -> float:
    """A stage's bpb on the new data of a continuum point: web English and German weighted by the German share."""
    return (1 - german) * vals[(stage, "en_new")] + german * vals[(stage, "de_new")]


def shift_continuum(fin: pd.DataFrame, experiment: str = "paper1_shift_continuum") -> pd.DataFrame:
    """Forgetting and adaptation (bits per byte) against a measured shift score, per continuum point.

    Per seed: shift score = the pre-trained model's bpb on the new data, the German share g weighting
    the web-English and German domains ((1 − g)·bpb(en_new) + g·bpb(de_new), a token-share approximation);
    forgetting = bpb(en_old) after − before; adaptation = the score minus the same mix of the continual
    model's bpb. Columns: variant, german_share, shift_score, forgetting, adaptation (each with ``_std``), n."""
    part = fin[(fin["experiment"] == experiment) & fin["domain"].isin(["en_old", "en_new", "de_new"])]
    if part.empty:
        raise DataError(f"runs: no finished stages of {experiment} (the shift continuum)")
    rows = []
    for (variant, seed), run in part.groupby(["variant", "seed"], sort=True):
        g = GERMAN_SHARE.get(str(variant))
        vals = run.set_index(["stage", "domain"])["bpb"]
        need = [(s, d) for s in ("pretrain", "continual") for d in ("en_old", "en_new", "de_new")]
        if g is None or not all(k in vals.index for k in need):
            continue
        before, after = (_mix(vals, stage, g) for stage in ("pretrain", "continual"))
        rows.append({"variant": variant, "seed": seed, "german_share": g, "shift_score": before,
                     "forgetting": vals[("continual", "en_old")] - vals[("pretrain", "en_old")],
                     "adaptation": before - after})  # fmt: skip
    if not rows:
        raise DataError(f"curves: no {experiment} run has bits per byte on en_old, en_new and de_new before and after")
    per_seed = pd.DataFrame(rows)
    grp = per_seed.groupby(["variant", "german_share"], sort=False)
    cols = ["shift_score", "forgetting", "adaptation"]
    out = grp[cols].mean().join(grp[cols].std(ddof=1).add_suffix("_std")).assign(n=grp["seed"].nunique())
    return out.reset_index().sort_values("german_share").reset_index(drop=True)
