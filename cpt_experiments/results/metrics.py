"""Continual-pre-training metrics from the results tables: the loss matrix and what derives from it.

Every quantity is computed from a stored loss matrix M[(run_id, stage), domain] of final
validation losses (nats/token), with stage boundaries taken from ``runs`` (formulas written
down, not implied). Domains are validation roles; which one is a stage's old data (D0, where
forgetting shows) and which its new data (D1, where adaptation shows) is recorded in each runs
row (``old_domain``, ``new_domain``), so no domain name is hard-coded here.

Per-stage values are averaged only through ``results.groups`` (``cell_summary``,
``union_reference``): each stage once by ``stage_hash``, seeds pooled only within a cell of
identical factors, never across experiments, configurations or corpora.

Paper 2 lives beside this module: released models per version in ``results.releases``, the cost
ledger in ``results.ledger``.
"""

from __future__ import annotations

import pandas as pd

from cpt_experiments.errors import DataError
from cpt_experiments.results import groups

#: Paper 1 metrics (forgetting, adaptation, union gap) apply to these roles; paper 2: results.releases.
CONTINUAL_ROLES = frozenset({"continual"})


def loss_matrix(curves: pd.DataFrame, runs: pd.DataFrame, *, metric: str = "loss") -> pd.DataFrame:
    """Final validation ``metric`` per stage and domain: M[(run_id, stage), domain].

    M[s, d] = value of the ``curves`` row (split=d, metric) at the last step of stage s that
    has any validation row; a domain not evaluated at that step is NaN. Only stages present
    in ``runs`` with status done or reused are kept (failed/running stages have no final
    loss). Columns are the validation splits (every split except ``train``), sorted.
    """
    val = curves[(curves["metric"] == metric) & (curves["split"] != "train")]
    if val.empty:
        raise DataError(f"curves: no validation rows with metric {metric!r}")
    last_step = val.groupby(["run_id", "stage"])["step"].transform("max")
    final = val[val["step"] == last_step]
    matrix = final.pivot_table(index=["run_id", "stage"], columns="split", values="value", aggfunc="mean")
    ok = runs[runs["status"].isin(["done", "reused"])].set_index(["run_id", "stage"]).index
    matrix = matrix[matrix.index.isin(ok)]
    matrix.columns.name = "domain"
    return matrix.reindex(columns=sorted(matrix.columns)).astype("float64")


def stage_table(matrix: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per stage in ``matrix``: its ``runs`` row, its cell and its pre-training reference.

    Columns: every ``runs`` column, ``cell``, ``chain_corpora``, ``chain_roles`` (``groups.annotate``), and
    ``old_loss``, ``new_loss`` (M[s, old_domain], M[s, new_domain]), ``avg`` = (old_loss +
    new_loss) / 2 (paper 1's AVG), ``root_stage`` (the first ancestor of s following
    ``parent_stage`` within the run; s itself for a root) and ``pre_old_loss`` /
    ``pre_new_loss`` (M at the root stage; looked up by (run_id, stage), else by the root's
    ``stage_hash`` in another run, because a reused pre-training stage may have been collected
    only once). A missing ``shift`` reads as "none", a missing ``new_domain`` as ``old_domain``.
    """
    info = groups.annotate(runs).set_index(["run_id", "stage"])
    rows = []
    by_hash = losses_by_hash(matrix, runs)
    for (rid, stage), losses in matrix.iterrows():
        if (rid, stage) not in info.index:
            continue
        r = info.loc[(rid, stage)]
        if pd.isna(r["old_domain"]):
            raise DataError(f"runs: stage {rid}/{stage} has no old_domain (collected by an older version?)")
        old_dom = r["old_domain"]
        new_dom = r["new_domain"] if pd.notna(r["new_domain"]) else old_dom
        root = _root_stage(info, rid, stage)
        pre = _lookup(matrix, by_hash, info, rid, root)
        old_loss, new_loss = losses.get(old_dom, float("nan")), losses.get(new_dom, float("nan"))
        rows.append(
            {
                **r.to_dict(), "run_id": rid, "stage": stage,
                "shift": r["shift"] if pd.notna(r["shift"]) else "none",
                "old_domain": old_dom, "new_domain": new_dom, "root_stage": root,
                "old_loss": old_loss, "new_loss": new_loss, "avg": (old_loss + new_loss) / 2,
                "pre_old_loss": pre.get(old_dom, float("nan")), "pre_new_loss": pre.get(new_dom, float("nan")),
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def forgetting(table: pd.DataFrame) -> pd.Series:
    """Forgetting of each continual stage: old_loss − pre_old_loss (nats/token; > 0 = forgot).

    ``table`` is ``stage_table(...)``; the result is indexed by (run_id, stage) and holds only
    stages with role continual.
    """
    t = _continual(table)
    return (t["old_loss"] - t["pre_old_loss"]).rename("forgetting")


def adaptation(table: pd.DataFrame) -> pd.Series:
    """Adaptation of each continual stage: pre_new_loss − new_loss (nats/token; > 0 = learned).

    pre_new_loss is the pre-trained model's loss on the new domain, i.e. the loss at the start
    of the continual stage.
    """
    t = _continual(table)
    return (t["pre_new_loss"] - t["new_loss"]).rename("adaptation")


#: What a union baseline shares with the continual stages it is the reference of: shift, size and
#: the same data along the stage's whole chain (``chain_roles``: which roles, ``chain_corpora``:
#: which corpus filled each; a third dataset in the chain is not this union's data).
UNION_MATCH = ("shift", "scale", "model", "chain_roles", "chain_corpora")
#: A union cell is defined by its content, not by the experiment or run that recorded it.
UNION_FACTORS = tuple(c for c in groups.CELL_FACTORS if c not in ("experiment", "stage", "parent_stage"))


def union_reference(table: pd.DataFrame) -> pd.DataFrame:
    """Union-baseline cells of ``stage_table(...)``: old/new/AVG loss, mean ± std over the cell's own seeds.

    Each union stage counts once (by ``stage_hash``) however many runs reused it; cells are
    formed over ``UNION_FACTORS`` (see ``groups``). Columns: the cell's factors, ``union_cell``,
    ``old_loss``, ``new_loss``, ``avg`` and their ``_std``, ``n`` (seeds).
    """
    union = table[table["role"] == "union"]
    if union.empty:
        return union.assign(union_cell=pd.Series(dtype="object"), n=pd.Series(dtype="int64"))
    cells = groups.annotate(union, factors=UNION_FACTORS)["cell"].to_numpy()
    ref = groups.aggregate(union.assign(cell=cells), ["old_loss", "new_loss", "avg"])
    return ref.rename(columns={"cell": "union_cell"})


def union_gap(table: pd.DataFrame, *, match: tuple[str, ...] = UNION_MATCH) -> pd.DataFrame:
    """Gap of each continual stage to its union baseline, per domain and AVG (nats/token).

    gap_old = old_loss − U_old, gap_new = new_loss − U_new, gap_avg = avg − U_avg, where U is
    the union cell (``union_reference``: mean over that cell's own seeds, each union stage once)
    whose ``match`` columns equal the stage's (missing equals missing). If several union cells
    match, the one recorded in the stage's own run is used; if that does not decide, DataError.
    Positive = the continual model is worse. No matching union baseline: NaN. ``union_n`` is the
    number of union seeds behind U.
    """
    t = _continual(table).reset_index()
    ref = union_reference(table)
    own = {}  # run_id -> union cells recorded in that run
    union = table[table["role"] == "union"]
    if not union.empty:
        cells = groups.annotate(union, factors=UNION_FACTORS)["cell"]
        for rid, cell in zip(union["run_id"], cells):
            own.setdefault(rid, set()).add(cell)
    ref_keys = [tuple(groups.value_text(v) for v in row) for row in ref[list(match)].itertuples(index=False)]
    rows = []
    for r in t.itertuples(index=False):
        key = tuple(groups.value_text(getattr(r, c)) for c in match)
        cand = [i for i, k in enumerate(ref_keys) if k == key]
        if len(cand) > 1:
            cand = [i for i in cand if ref["union_cell"].iloc[i] in own.get(r.run_id, set())] or cand
        if len(cand) > 1:
            raise DataError(
                f"runs: {len(cand)} different union baselines match continual stage {r.run_id}/{r.stage} "
                f"on {', '.join(match)}; record the union in the stage's run or select one"
            )
        u = ref.iloc[cand[0]] if cand else None
        nan = float("nan")
        rows.append(
            {
                "run_id": r.run_id, "stage": r.stage,
                "gap_old": r.old_loss - u["old_loss"] if u is not None else nan,
                "gap_new": r.new_loss - u["new_loss"] if u is not None else nan,
                "gap_avg": r.avg - u["avg"] if u is not None else nan,
                "union_n": int(u["n"]) if u is not None else 0,
            }
        )  # fmt: skip
    cols = ["run_id", "stage", "gap_old", "gap_new", "gap_avg", "union_n"]
    return pd.DataFrame(rows, columns=cols).set_index(["run_id", "stage"])


#: Per-stage quantities that ``cell_summary`` averages over seeds.
SUMMARY_VALUES = ("old_loss", "new_loss", "avg", "forgetting", "adaptation", "gap_old", "gap_new", "gap_avg")


def summary(curves: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per continual stage: factors, old/new/AVG loss, forgetting, adaptation and union gaps."""
    table = stage_table(loss_matrix(curves, runs), runs)
    t = _continual(table)
    return t.join(forgetting(table)).join(adaptation(table)).join(union_gap(table))


def cell_summary(curves: pd.DataFrame, runs: pd.DataFrame, selection: groups.Selection | None = None) -> pd.DataFrame:
    """``summary`` aggregated per cell (``groups``): mean, ``_std`` and ``n`` over distinct seeds.

    ``selection`` maps experiment -> stage names (None: every experiment; cells never span two).
    Each stage counts once however many runs reused it.
    """
    per_stage = groups.select(summary(curves, runs).reset_index(), selection)
    if per_stage.empty:
        raise DataError(f"runs: no continual stages with final losses for selection {dict(selection or {})}")
    return groups.aggregate(per_stage, list(SUMMARY_VALUES))


def _continual(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["role"].isin(CONTINUAL_ROLES)].set_index(["run_id", "stage"])


def _root_stage(info: pd.DataFrame, rid: str, stage: str) -> str:
    seen = {stage}
    while True:
        parent = info.loc[(rid, stage), "parent_stage"]
        if pd.isna(parent) or (rid, parent) not in info.index:
            return stage
        if parent in seen:
            raise DataError(f"runs: parent_stage cycle in run {rid!r} at stage {parent!r}")
        seen.add(parent)
        stage = parent


def losses_by_hash(matrix: pd.DataFrame, runs: pd.DataFrame) -> dict[str, pd.Series]:
    """The rows of ``matrix`` keyed by stage content (``stage_hash``): a stage reused by a run that recorded
    no curves reads the values of the run that did."""
    hashes = runs.dropna(subset=["stage_hash"]).set_index(["run_id", "stage"])["stage_hash"]
    return {hashes[k]: row for k, row in matrix.iterrows() if k in hashes.index}


def _lookup(matrix: pd.DataFrame, by_hash: dict, info: pd.DataFrame, rid: str, stage: str) -> pd.Series:
    if (rid, stage) in matrix.index:
        return matrix.loc[(rid, stage)]
    h = info.loc[(rid, stage), "stage_hash"]
    return by_hash.get(h, pd.Series(dtype="float64")) if pd.notna(h) else pd.Series(dtype="float64")
