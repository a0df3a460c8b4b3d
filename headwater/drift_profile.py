"""Reference profiles of training data: what a model version saw, stored with it, for the drift alarms.

A **profile** is a small JSON document (about 1 kB per feature) the batch layer logs with each model
version (``drift_profile.json`` in the generation's run). Per feature it holds the counts of the
training rows in 50 equal-frequency fine bins (numeric: the 2 %..98 % quantiles as edges) or per
category (the ``top_k`` most frequent categories, the rest pooled as ``other``), plus missing values,
means, sds and display quantiles. Only counts are kept, no sample of rows: Spark computes them in three
passes (:func:`profile_from_spark`) and the detector (:mod:`headwater.drift_detector`) needs no more.
ALS keeps its own profile (:mod:`headwater.apps.als.drift`).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> profile = build_profile({"age": rng.normal(40, 10, 10_000), "plan": rng.choice(["free", "pro"], 10_000)},
...                         categorical=["plan"])
>>> [f["type"] for f in profile["features"]], profile["rows"]
(['numeric', 'categorical'], 10000)
>>> sum(profile["features"][0]["counts"]), profile["features"][1]["categories"]
(10000, ['free', 'pro'])
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

FORMAT = "headwater.drift-profile/1"
FINE_BINS = 50
TOP_K = 100


# --- profiles ------------------------------------------------------------------------------------

def _fine_probs(fine_bins: int) -> list[float]:
    return [i / fine_bins for i in range(1, fine_bins)]


def missing_mask(values: np.ndarray) -> np.ndarray:
    """Which values are missing: NaN for floats, None / "" / NaN for objects, "" for strings."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind == "O":
        return np.array([v is None or v == "" or (isinstance(v, float) and math.isnan(v)) for v in values],
                        dtype=bool)
    if values.dtype.kind in "US":
        return values == ""
    return np.zeros(values.shape, bool)


DISPLAY_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def numeric_feature(name: str, x: np.ndarray, fine_bins: int, edges: Sequence[float] | None = None) -> dict[str, Any]:
    """One numeric feature's profile: counts between ``edges`` (default: its fine-bin quantiles)."""
    x = np.asarray(x, dtype=float)
    missing = np.isnan(x)
    ok = x[~missing]
    if edges is None:
        edges = np.unique(np.quantile(ok, _fine_probs(fine_bins))) if ok.size else np.array([])
    edges = np.unique(np.asarray(edges, dtype=float))
    counts = np.bincount(np.searchsorted(edges, ok, side="right"), minlength=edges.size + 1)
    quantiles = dict(zip(map(str, DISPLAY_QUANTILES), np.quantile(ok, DISPLAY_QUANTILES).tolist())) if ok.size else {}
    return {"name": name, "type": "numeric", "edges": edges.tolist(), "counts": counts.tolist(),
            "missing": int(missing.sum()), "mean": float(ok.mean()) if ok.size else None,
            "std": float(ok.std()) if ok.size else None, "quantiles": quantiles}


def _categorical_feature(name: str, values: np.ndarray, top_k: int) -> dict[str, Any]:
    values = np.asarray(values)
    missing = missing_mask(values)
    ok = values[~missing].astype(str)
    cats, counts = np.unique(ok, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    keep = order[:top_k]
    return {"name": name, "type": "categorical", "categories": cats[keep].tolist(),
            "counts": counts[keep].astype(int).tolist(), "other": int(counts[order[top_k:]].sum()),
            "missing": int(missing.sum()), "distinct": int(cats.size)}


def build_profile(data: Mapping[str, Any], categorical: Sequence[str] = (), fine_bins: int = FINE_BINS,
                  top_k: int = TOP_K) -> dict[str, Any]:
    """Reference profile of training data given as columns (name -> array), numpy/pandas/pyarrow alike.

    ``categorical`` names the categorical columns; every other column is numeric.
    """
    features, rows = [], None
    for name, col in data.items():
        arr = np.asarray(col)
        rows = arr.shape[0] if rows is None else rows
        if arr.shape[0] != rows:
            raise ValueError(f"column {name!r} has {arr.shape[0]} rows, others {rows}")
        if name in categorical:
            features.append(_categorical_feature(name, arr, top_k))
        else:
            features.append(numeric_feature(name, arr, fine_bins))
    return {"format": FORMAT, "kind": "tabular", "rows": int(rows or 0), "fine_bins": fine_bins,
            "top_k": top_k, "features": features}


def profile_from_spark(df, numeric: Sequence[str], categorical: Sequence[str] = (), fine_bins: int = FINE_BINS,
                       top_k: int = TOP_K, relative_error: float = 1e-3, sample_fraction: float | None = None,
                       seed: int = 0) -> dict[str, Any]:
    """The same profile from a Spark DataFrame, in three cheap passes and without collecting rows.

    1. ``approxQuantile`` for the fine-bin edges of every numeric column (Greenwald-Khanna sketch);
    2. one ``explode`` of (feature, bin-or-category) pairs and a ``groupBy().count()`` -- the exact
       counts for those edges, missing values and categories of every feature at once (the edges need
       not be exact quantiles: the test uses the counts);
    3. one aggregation for the rows, means, sds and display quantiles.

    ``sample_fraction`` profiles a Bernoulli sample instead (the reference size is then the sample's).
    The result equals :func:`build_profile` on the same rows up to the approximate edges.
    """
    from pyspark.sql import functions as F

    if sample_fraction is not None:
        df = df.sample(withReplacement=False, fraction=sample_fraction, seed=seed)
    df = df.select(*[F.col(c).cast("double").alias(c) for c in numeric],
                   *[F.col(c).cast("string").alias(c) for c in categorical])
    quantiles = df.approxQuantile(list(numeric), _fine_probs(fine_bins), relative_error) if numeric else []
    edges = {c: sorted(set(float(q) for q in qs if q is not None and not math.isnan(q)))
             for c, qs in zip(numeric, quantiles)}
    pairs = []
    for i, c in enumerate(numeric):
        valid = F.col(c).isNotNull() & ~F.isnan(F.col(c))
        fine = sum((F.when(F.col(c) >= F.lit(e), 1).otherwise(0) for e in edges[c]), F.lit(0))
        key = F.when(valid, fine.cast("string")).otherwise(F.lit(None).cast("string"))
        pairs.append(F.struct(F.lit(i).alias("f"), key.alias("k")))
    for i, c in enumerate(categorical, start=len(numeric)):
        key = F.when(F.col(c) != "", F.col(c)).otherwise(F.lit(None).cast("string"))
        pairs.append(F.struct(F.lit(i).alias("f"), key.alias("k")))
    counted = (df.select(F.explode(F.array(*pairs)).alias("p")).select("p.f", "p.k")
               .groupBy("f", "k").count().collect())
    by_feature: dict[int, dict] = {}
    for r in counted:
        by_feature.setdefault(r["f"], {})[r["k"]] = int(r["count"])
    pq = DISPLAY_QUANTILES
    exprs = [F.count(F.lit(1)).alias("__rows")]
    for c in numeric:
        valid = F.when(F.col(c).isNotNull() & ~F.isnan(F.col(c)), F.col(c))
        exprs += [F.avg(valid).alias(f"{c}__mean"), F.stddev_pop(valid).alias(f"{c}__std"),
                  F.percentile_approx(valid, list(pq), 10_000).alias(f"{c}__q")]
    row = df.agg(*exprs).collect()[0].asDict()
    features = []
    for i, c in enumerate(numeric):
        got = by_feature.get(i, {})
        features.append({"name": c, "type": "numeric", "edges": edges[c],
                         "counts": [got.get(str(j), 0) for j in range(len(edges[c]) + 1)],
                         "missing": got.get(None, 0), "mean": row[f"{c}__mean"], "std": row[f"{c}__std"],
                         "quantiles": dict(zip(map(str, pq), row[f"{c}__q"] or []))})
    for i, c in enumerate(categorical, start=len(numeric)):
        got = by_feature.get(i, {})
        missing = got.pop(None, 0)
        ranked = sorted(got.items(), key=lambda kv: (-kv[1], kv[0]))
        features.append({"name": c, "type": "categorical", "categories": [k for k, _ in ranked[:top_k]],
                         "counts": [v for _, v in ranked[:top_k]], "other": sum(v for _, v in ranked[top_k:]),
                         "missing": missing, "distinct": len(ranked)})
    return {"format": FORMAT, "kind": "tabular", "rows": int(row["__rows"]), "fine_bins": fine_bins,
            "top_k": top_k, "features": features}
