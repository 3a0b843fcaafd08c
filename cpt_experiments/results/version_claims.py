"""Paper 2's claims as seed-paired comparisons of released models, each judged by ``verdicts``' rule.

Every row is one comparison at one version: strategy A − strategy B (``releases.paired``), in nats/token on the
versions' shared validation split, or a cost ratio from the ledger. Paper 2 prints no loss table (Part B of
../shared/reference/papers.md gives its claims in words), so the rows carry the paper's *side* (``sign``) or
its "matches" (``at most`` 0) instead of a number. Two rows per path-switching release answer "for the same
tokens / the same compute, which is better?":

* **matched tokens**: the release's lineage read T_i = ``cumulative_tokens`` of its branch (main path + branch),
  more than PTFS's version i (i·ΔT). PTFS's released loss at T_i tokens is interpolated linearly in log tokens
  between the two PTFS releases whose budgets bracket T_i (same seed); a release beyond PTFS's largest budget
  (version 4) has no matched PTFS model in the tables and is left out.
* **matched cost**: the release's cumulative training cost C(i) (``ledger.per_seed``, accounting ``extra``)
  against PTFS's *latest release affordable at that total cost*: the largest version j with C_PTFS(j) ≤ C(i)
  (no interpolation: that model exists). For the same compute, PTFS would have released version j.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cpt_experiments.errors import DataError
from cpt_experiments.results import groups, ledger, releases, store, verdicts

#: The CPT findings (Part B, B5): label -> (A, B, the paper's side of A − B, group).
CPT_PAIRS = {
    "(c) undecayed − (a) decayed start": ("cpt_undecayed", "cpt_rewarm", -1, "3-undecayed"),
    "(c) complete − (d) partial decay": ("cpt_undecayed", "cpt_partial", -1, "4-partial"),
    "(a) complete decay − (b) constant η_min": ("cpt_rewarm", "cpt_const", -1, "4-none"),
}
COLUMNS = ["claim", "comparison", "group", "label", "version", "paper", "ours", "ours_std", "n", "seeds", "lo", "hi",
           "sense", "verdict", "note"]  # fmt: skip


def branch_f(variant: str) -> str:
    """``ps-cosine-f45`` → ``f=0.45`` (the branch length as a fraction of a version's tokens)."""
    m = re.search(r"-f(\d+)$", variant)
    return f"f={int(m.group(1)) / 100:g}" if m else variant


def _row(claim: str, comparison: str, group: str, label: str, version: int, d: dict, sense: str, sign: int | None,
         note: str = "") -> dict:  # fmt: skip
    n = int(d["n"])
    lo, hi = verdicts.interval(d["diff"], d["diff_std"], n)
    word = verdicts.verdict(d["diff"], d["diff_std"], n, sense=sense, sign=sign)
    return {"claim": claim, "comparison": comparison, "group": group, "label": label, "version": version,
            "paper": float("nan"), "ours": d["diff"], "ours_std": d["diff_std"], "n": n, "seeds": d["seeds"],
            "lo": lo, "hi": hi, "sense": sense, "verdict": word, "note": note}  # fmt: skip


def _paired_rows(rel: pd.DataFrame, a: tuple[str, str], b: tuple[str, str], versions: range | tuple) -> list[dict]:
    try:
        d = releases.paired(rel, a, b)
    except DataError:
        return []
    return [r._asdict() for r in d[d["version"].isin(versions)].itertuples(index=False)]


def _widening(rel: pd.DataFrame, a: tuple[str, str], b: tuple[str, str], first: int, last: int) -> dict | None:
    """Per seed, (A − B at version ``last``) − (A − B at ``first``): mean, std, n, seeds; None without a seed
    that has both versions of both strategies."""
    sel = [
        rel[(rel["experiment"] == e) & (rel["variant"] == v)].set_index(["seed", "version"])["loss"] for e, v in (a, b)
    ]
    gap = (sel[0] - sel[1]).dropna().unstack("version")
    if first not in gap or last not in gap:
        return None
    d = (gap[last] - gap[first]).dropna()
    if d.empty:
        return None
    diff, diff_std = groups.spread(d)
    return {"diff": diff, "diff_std": diff_std, "n": len(d), "seeds": groups.seed_list(pd.Series(d.index))}


def matched(rel: pd.DataFrame, runs: pd.DataFrame, strategy: tuple[str, str], base: str, by: str) -> pd.DataFrame:
    """Per version: ``strategy``'s release − PTFS (variant ``base``) at matched tokens (``by="tokens"``) or
    matched cost (``by="cost"``), seed by seed (module docstring). Columns: version, diff, diff_std, n, seeds."""
    if by not in ("tokens", "cost"):
        raise DataError(f"matched: unknown matching {by!r} (tokens | cost)")
    info = rel.merge(runs[["run_id", "stage", "cumulative_tokens"]], on=["run_id", "stage"], how="left")
    cost = ledger.per_seed(runs).set_index(["experiment", "variant", "seed", "version"])["cumulative_cost"]
    col = "cumulative_tokens" if by == "tokens" else "cumulative_cost"
    keys = zip(info["experiment"], info["variant"], info["seed"], info["version"])
    info["cumulative_cost"] = [cost.get(k, np.nan) for k in keys]
    ours = info[(info["experiment"] == strategy[0]) & (info["variant"] == strategy[1])]
    ptfs = info[(info["experiment"] == "ptfs") & (info["variant"] == base)]
    per = []
    for r in ours.itertuples():
        p = ptfs[ptfs["seed"] == r.seed].sort_values(col)
        x, y = p[col].astype(float).to_numpy(), p["loss"].to_numpy()
        at = float(getattr(r, col))
        if len(x) == 0 or not math.isfinite(at):
            continue
        if by == "cost":
            below = np.flatnonzero(x <= at)
            ref = y[below[-1]] if below.size else np.nan
        else:
            ref = np.interp(np.log(at), np.log(x), y) if x[0] <= at <= x[-1] else np.nan
        if math.isfinite(ref):
            per.append({"version": r.version, "seed": r.seed, "d": r.loss - ref})
    out = []
    for version, part in pd.DataFrame(per, columns=["version", "seed", "d"]).groupby("version", sort=True):
        diff, diff_std = groups.spread(part["d"])
        out.append({"version": version, "diff": diff, "diff_std": diff_std, "n": part["seed"].nunique(),
                    "seeds": groups.seed_list(part["seed"])})  # fmt: skip
    return pd.DataFrame(out, columns=["version", "diff", "diff_std", "n", "seeds"])


def table(rel: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The claims table of paper 2 (columns ``COLUMNS``): every comparison whose strategies are in ``rel``."""
    out = []
    for d in _paired_rows(rel, ("cpt_rewarm", "cpt_rewarm"), ("ptfs", "ptfs-cosine"), (2, 3, 4)):
        out.append(_row("1 PTFS beats CPT", f"CPT (a) − PTFS cosine, v{d['version']}", "1-gap", f"v{d['version']}",
                        d["version"], d, "sign", +1))  # fmt: skip
    widen = _widening(rel, ("cpt_rewarm", "cpt_rewarm"), ("ptfs", "ptfs-cosine"), 2, 4)
    if widen is not None:
        out.append(_row("1 PTFS beats CPT", "gap widens: (CPT (a) − PTFS) at v4 − at v2", "1-widen", "v4 − v2", 4,
                        widen, "sign", +1))  # fmt: skip
    cost = ledger.ledger(runs)
    for r in cost[(cost["strategy"] == "cpt_rewarm") & (cost["version"] >= 2)].itertuples():
        out.append({"claim": "2 cost", "comparison": f"CPT (a) cost / PTFS cost, v{r.version}", "group": "2-cost",
                    "label": f"v{r.version}", "version": r.version, "paper": 2 / (r.version + 1),
                    "ours": r.ratio_to_ptfs, "n": 1, "sense": "sign", "verdict": "by construction",
                    "note": "cumulative tokens, from runs.csv"})  # fmt: skip
    for label, (a, b, side, group) in CPT_PAIRS.items():
        for d in _paired_rows(rel, (a, a), (b, b), (2, 3, 4)):
            out.append(_row("3/4 CPT findings", f"{label}, v{d['version']}", group, f"v{d['version']}",
                            d["version"], d, "sign", side))  # fmt: skip
    ps = sorted(set(rel.loc[rel["experiment"] == "path_switching", "variant"]))
    for variant in ps:
        fam = releases.family(variant)
        base, name = f"ptfs-{fam}", f"path switching {fam} {branch_f(variant)}"
        cosine = fam == "cosine"
        for d in _paired_rows(rel, ("path_switching", variant), ("ptfs", base), (4,)):
            out.append(_row("5/6 path switching matches PTFS", f"{name} − PTFS {fam}, v4", "5-v4" if cosine else
                            "6-v4", f"{fam} {branch_f(variant)}", 4, d, "at most", None))  # fmt: skip
        for by in ("tokens", "cost"):
            note = ("PTFS interpolated in log tokens between its releases" if by == "tokens" else
                    "PTFS's latest release with cumulative cost ≤ ours")  # fmt: skip
            for d in matched(rel, runs, ("path_switching", variant), base, by).to_dict("records"):
                v = int(d["version"])
                out.append(_row("5/6 path switching matches PTFS", f"{name} − PTFS {fam} at matched {by}, v{v}",
                                f"{5 if cosine else 6}-{by}", f"{fam} {branch_f(variant)} v{v}", v, d, "at most",
                                None, note))  # fmt: skip
    return pd.DataFrame([{c: r.get(c, "" if c == "note" else float("nan")) for c in COLUMNS} for r in out],
                        columns=COLUMNS)  # fmt: skip


def claims_table(results_dir: Path) -> pd.DataFrame:
    """``table`` of the tables in ``results_dir``."""
    runs, curves = store.load(results_dir, "runs"), store.load(results_dir, "curves")
    return table(releases.released(curves, runs), runs)
