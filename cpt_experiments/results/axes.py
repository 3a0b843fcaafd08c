"""Paper 1's axes beyond the paper: the continual − union gap along tokens per parameter (the regime axis) and
forgetting and adaptation against a measured shift score (the shift continuum), from ``comparisons.finals``."""

from __future__ import annotations

import pandas as pd

from cpt_experiments.errors import DataError
from cpt_experiments.results import comparisons, groups


def _stage(experiment: str, variant: str, stage: str) -> comparisons.Selector:
    return {"experiment": experiment, "variant": variant, "stage": stage}


#: The paper's regime for the regime axis: (union tokens per parameter, CPT − union AVG gap in nats) of the
#: 405M model: 600B tokens and 2.37 − 2.35 (weak, 5% replay); 500B tokens and 1.75 − 1.75 (strong, 25%).
PAPER_REGIME = {"weak": (600e9 / 405e6, 2.37 - 2.35), "strong": (500e9 / 405e6, 1.75 - 1.75)}


def _first(frame: pd.DataFrame, column: str) -> float:
    """The first value of ``column`` as a float (NaN when the column is absent or empty)."""
    return float(frame[column].iloc[0]) if column in frame and pd.notna(frame[column].iloc[0]) else float("nan")


def regime(fin: pd.DataFrame, experiment: str = "paper1_regime") -> pd.DataFrame:
    """The continual − union gap per point of the regime axis (each variant of ``experiment``), paired over
    seeds, with the union's tokens per parameter (its cumulative tokens / the model's parameters).

    Columns: shift, variant, model, params, params_non_embedding, tokens_per_param (embeddings included),
    tokens_per_param_non_embedding, kind (old | new | avg), gap, gap_std, gap_bpb,
    gap_bpb_std, n. Raises DataError when ``experiment`` has no finished continual and union stages."""
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
    out = groups.seed_stats(grp, cols).drop(columns=[f"{c}_n" for c in cols]).assign(n=grp["seed"].nunique())
    return out.reset_index().sort_values("german_share").reset_index(drop=True)
