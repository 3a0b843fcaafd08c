"""Which rows form one experimental cell, and mean ± std over its seeds: the one aggregation path.

Metrics, every figure and the notebook aggregate stage rows the same way:

1. **Select** explicitly: rows of the named experiments and stage names (``select``), never
   "everything whose factors look alike" (another experiment may hold an unrelated stage with
   the same shift and replay ratio, e.g. the second stage of a chain).
2. **De-duplicate** by ``stage_hash`` (``dedupe``): a stage reused by several runs is one
   measurement, counted once. The row kept is the first by (experiment, run_id, stage).
3. **Cell** (``annotate``): two stages are in one cell when every column of ``CELL_FACTORS`` is
   equal (missing equals missing, so an older table without ``corpora`` pools only with
   itself, as "unknown but equal"), the ``variant`` label is equal (except for the shared
   roles in ``SHARED_ROLES``, whose rows carry whichever run's variant reused them) and their
   parent stages are in one cell, recursively; cells that hold one ``stage_hash`` (a stage recorded
   under two experiments) are one cell. ``config_hash``, ``stage_hash`` and
   ``parent_hash`` are left out because they include the seed; provenance (``git_commit``,
   times, paths) and quantities derived from the factors (steps, FLOPs, ``eta_end``) too.
4. **Seeds** (``aggregate``): within a cell each seed must be one stage; two different stages
   with the same seed in one cell mean a setting that the table does not record differs, and
   that is an error rather than a silent average. Mean and std (ddof=1) are over distinct
   seeds; the std is NaN for n = 1, so a single seed never gets an error bar.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from cpt_experiments.errors import DataError

#: Columns of ``runs`` that define a stage's configuration apart from its seed (see module doc).
CELL_FACTORS: tuple[str, ...] = (
    "experiment", "stage", "parent_stage", "role", "shift", "old_corpus", "new_corpus", "old_domain",
    "new_domain", "corpora", "replay_ratio", "replay_mode", "data_windows", "init_from", "optimizer_policy", "schedule",
    "eta_max", "eta_min", "eta_const", "warmup_frac", "adam_beta1", "adam_beta2", "adam_eps", "weight_decay",
    "grad_clip", "global_batch_windows", "seq_len", "scale", "model", "version", "tokenizer_hash", "stage_tokens",
)  # fmt: skip
#: Roles whose stages are shared by runs of different variants: their ``variant`` is not a factor.
SHARED_ROLES: frozenset[str] = frozenset({"pretrain", "union"})

#: An experiment name -> the stage names selected from it (None: every stage).
Selection = Mapping[str, Sequence[str] | None]


def value_text(value: object) -> str:
    """Canonical text of one cell value; missing -> "" (so missing equals missing)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return repr(float(value))  # numpy floats too, and never rounded: 3e-4 and 3.0000001e-4 differ
    return str(value)


def corpus_entries(value: object) -> frozenset[str] | None:
    """Entries ``role=<name>@<hash>`` of a ``corpora`` cell; None when the column is missing."""
    text = value_text(value)
    return frozenset(e.strip() for e in text.split(",") if e.strip()) if text else None


def _roles(row: pd.Series) -> frozenset[str]:
    """Corpus roles a stage names as its old and new data (``old_corpus``, ``new_corpus``)."""
    return frozenset(r for c in ("old_corpus", "new_corpus") for r in value_text(row.get(c)).split(",") if r)


def annotate(
    runs: pd.DataFrame, *, factors: Sequence[str] = CELL_FACTORS, shared_roles: Iterable[str] = SHARED_ROLES
) -> pd.DataFrame:
    """``runs`` plus ``cell`` (the cell key, see module doc), ``chain_corpora`` and ``chain_roles``.

    ``chain_corpora`` is the sorted, comma-joined set of ``corpora`` entries of the stage and
    all its ancestors (``parent_stage`` within the run); missing if any of them lacks
    ``corpora``. ``chain_roles`` is the same for the roles in ``old_corpus``/``new_corpus``
    (recorded by older tables too). A continual stage and the union baseline of its chain
    read the same sets. ``shared_roles=()`` makes ``variant`` a factor for every role (e.g.
    runs whose only recorded difference is the variant, such as an infinite schedule's shape).
    """
    shared = frozenset(shared_roles)
    cols = [c for c in factors if c in runs.columns]
    rows = runs.reset_index(drop=True)
    own = {}
    for _, r in rows.iterrows():
        variant = "" if r.get("role") in shared else value_text(r.get("variant"))
        own[(r["run_id"], r["stage"])] = (
            "|".join(f"{c}={value_text(r[c])}" for c in cols) + f"|variant={variant}",
            corpus_entries(r.get("corpora")),
            _roles(r),
            r.get("parent_stage"),
        )
    paths, chains, roles = [], [], []
    for rid, stage in zip(rows["run_id"], rows["stage"]):
        path, corpora, names = [], set(), set()
        known = True
        node = (rid, stage)
        while node in own and node not in path:  # walk to the root; a cycle ends the walk
            path.append(node)
            _text, entries, role_names, parent = own[node]
            known = known and entries is not None
            corpora |= entries or set()
            names |= role_names
            node = (rid, parent) if isinstance(parent, str) else None
        paths.append(tuple(path))
        chains.append(",".join(sorted(corpora)) if known else pd.NA)
        roles.append(",".join(sorted(names)))
    hashes = {(r, s): value_text(h) for r, s, h in zip(rows["run_id"], rows["stage"], _hashes(rows))}
    cell = _content_cells(paths, {n: v[0] for n, v in own.items()}, hashes)
    cells = [cell[p] for p in paths]
    return rows.assign(
        cell=cells, chain_corpora=pd.array(chains, dtype="string"), chain_roles=pd.array(roles, dtype="string")
    )


def _hashes(rows: pd.DataFrame) -> pd.Series:
    return rows["stage_hash"] if "stage_hash" in rows.columns else pd.Series(pd.NA, index=rows.index)


def _find(root: dict[str, str], key: str) -> str:
    while root[key] != key:
        key = root[key]
    return key


def _content_cells(paths: Iterable[tuple], text: Mapping[tuple, str], hashes: Mapping[tuple, str]) -> dict[tuple, str]:
    """The cell key of every chain (a stage, then its ancestors): its own factors, then its parent's cell.

    One stage content (a ``stage_hash``) recorded under several experiments is one configuration, so the
    cells holding it are merged (into the first key in sort order), root first so that children of merged
    parents compare equal: a shared stage then counts for every experiment that drew it, its seeds once.
    """
    todo: set[tuple] = set()
    for path in paths:
        todo.update(path[i:] for i in range(len(path)))
    cell: dict[tuple, str] = {}
    for depth in sorted({len(p) for p in todo}):
        level = [p for p in todo if len(p) == depth]
        raw = {p: text[p[0]] + (" < " + cell[p[1:]] if depth > 1 else "") for p in level}
        root = {k: k for k in raw.values()}  # union-find over the keys of this depth
        by_hash: dict[str, list[str]] = {}
        for p in level:
            if hashes.get(p[0]):
                by_hash.setdefault(hashes[p[0]], []).append(raw[p])
        for keys in by_hash.values():
            for k in keys[1:]:
                a, b = sorted((_find(root, keys[0]), _find(root, k)))
                root[b] = a
        cell.update({p: _find(root, raw[p]) for p in level})
    return cell


def select(
    rows: pd.DataFrame, selection: Selection | None = None, *, roles: Iterable[str] | None = None
) -> pd.DataFrame:
    """Rows of the experiments (and their named stages) in ``selection`` with a role in ``roles``.

    ``selection=None`` keeps every experiment (the cell key still separates them); a stage list
    of None keeps every stage of that experiment.
    """
    keep = pd.Series(True, index=rows.index)
    if selection is not None:
        keep &= pd.Series(
            [
                e in selection and (selection[e] is None or s in selection[e])
                for e, s in zip(rows["experiment"], rows["stage"])
            ],
            index=rows.index,
            dtype=bool,
        )
    if roles is not None:
        keep &= rows["role"].isin(list(roles))
    return rows[keep]


def dedupe(rows: pd.DataFrame, *, by: Sequence[str] = ()) -> pd.DataFrame:
    """One row per ``stage_hash`` (and ``by`` columns, e.g. a benchmark task).

    A stage reused by several runs is measured once; the row kept is the first by
    (experiment, run_id, stage). Rows without a ``stage_hash`` are kept as they are.
    """
    if "stage_hash" not in rows.columns:
        return rows
    order = [c for c in ("experiment", "run_id", "stage") if c in rows.columns]
    rows = rows.sort_values(order, kind="mergesort") if order else rows
    has = rows["stage_hash"].notna()
    unique = rows[has].drop_duplicates(subset=["stage_hash", *by], keep="first")
    return pd.concat([unique, rows[~has]]).sort_index()


def content_key(rows: pd.DataFrame) -> pd.Series:
    """The content key of stage rows: ``stage_hash``, else ``run_id/stage`` (a row without a hash is its own stage)."""
    fallback = rows["run_id"].astype(str) + "/" + rows["stage"].astype(str)
    return rows["stage_hash"].astype("object").where(rows["stage_hash"].notna(), fallback)


def _check_seeds(rows: pd.DataFrame, by: Sequence[str]) -> None:
    seed = rows["seed"].astype("object").where(rows["seed"].notna(), "?")
    count = content_key(rows).groupby([rows["cell"], *[rows[c] for c in by], seed], dropna=False).nunique()
    if (count > 1).any():
        cell, *_rest, s = count[count > 1].index[0]
        bad = rows[(rows["cell"] == cell) & (seed == s)]
        where = ", ".join(f"{r.run_id}/{r.stage}" for r in bad.itertuples())
        raise DataError(
            f"runs: stages {where} have the same factors and seed {s} but different stage_hash "
            "(a setting not recorded in runs.csv differs; select one of them explicitly)"
        )


def spread(values: pd.Series) -> tuple[float, float]:
    """Mean and seed spread (std, ddof=1) of per-seed values; the std is NaN for fewer than two values."""
    return float(values.mean()), float(values.std(ddof=1)) if values.notna().sum() > 1 else float("nan")


def seed_stats(grouped, columns: Sequence[str]) -> pd.DataFrame:
    """Per group of a ``DataFrame.groupby`` over one value per seed: the mean of each of ``columns``, ``<c>_std``
    (ddof=1; NaN where fewer than two seeds have a value, so one seed never gets an error bar) and ``<c>_n``
    (the seeds with a value). The one seed pooling of every table, claim and figure."""
    cols = list(columns)
    part = grouped[cols]
    return part.mean().join(part.std(ddof=1).add_suffix("_std")).join(part.count().add_suffix("_n"))


def seed_list(seeds: pd.Series) -> str:
    """The distinct seeds as "0,1,2" (the ``seeds`` column of every seed-pooled table)."""
    return ",".join(str(s) for s in sorted(seeds.dropna().unique()))


def check_one_cell(part: pd.DataFrame, what: str, *, per: Sequence[str] = ("seed",)) -> None:
    """DataError unless ``part`` is one cell with one stage per ``per`` (pooling it is then a seed average,
    not an average of different configurations)."""
    if part["cell"].nunique() > 1:
        raise DataError(f"runs: {what} mixes {part['cell'].nunique()} configurations; give them distinct variants "
                        "or select one")  # fmt: skip
    dup = part.duplicated(list(per))
    if dup.any():
        raise DataError(f"runs: {what} has two stages with seed {part.loc[dup, 'seed'].iloc[0]}")


def aggregate(rows: pd.DataFrame, values: Sequence[str], *, by: Sequence[str] = ()) -> pd.DataFrame:
    """Mean, std and number of seeds of ``values`` per cell (and ``by`` columns).

    ``rows`` are stage rows carrying ``cell`` (from ``annotate``), ``stage_hash``, ``seed``,
    ``run_id``, ``stage`` and ``values``; they are de-duplicated by ``stage_hash`` first. One
    output row per group with the group's factor columns (first row's), ``<v>`` (mean over
    seeds, NaN ignored), ``<v>_std`` (ddof=1, NaN for fewer than two seeds with a value),
    ``<v>_n`` (seeds with a value), ``n`` (distinct seeds), ``seeds`` ("0,1") and ``label_variant``
    (the first non-empty variant). Raises DataError when a cell holds two stages of one seed.
    """
    missing = [c for c in ("cell", "seed", "run_id", "stage", *values, *by) if c not in rows.columns]
    if missing:
        raise DataError(f"runs: aggregation needs column {missing[0]!r} (annotate the runs rows first)")
    if "stage_hash" not in rows.columns:  # hand-made tables: every row is its own stage
        rows = rows.assign(stage_hash=pd.Series(pd.NA, index=rows.index, dtype="string"))
    rows = dedupe(rows, by=by)
    if rows.empty:
        return pd.DataFrame(columns=[*rows.columns, *(f"{v}_std" for v in values), "n", "seeds"])
    _check_seeds(rows, by)
    keys = ["cell", *by]
    g = rows.groupby(keys, sort=False, dropna=False)
    first = g.head(1).set_index(keys).drop(columns=list(values))
    vals = rows[[*keys, *values]].astype({v: "float64" for v in values})
    gv = vals.groupby(keys, sort=False, dropna=False)
    # Without values: the cells alone (which stages, how many seeds).
    stats = seed_stats(gv, values) if values else pd.DataFrame(index=first.index)
    seeds = g["seed"].agg(lambda s: ",".join(str(x) for x in sorted(s.dropna().unique())))
    variant = (
        g["variant"].agg(lambda s: next(iter(sorted(s.dropna().astype(str))), pd.NA)) if "variant" in rows else None
    )
    out = first.join(stats)
    out = out.assign(n=g["seed"].nunique(dropna=False), seeds=seeds)
    if variant is not None:
        out = out.assign(label_variant=variant)
    return out.reset_index()
