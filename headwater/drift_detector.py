"""Calibrated drift alarms: each window of live rows against the profile a model version was trained on.

- per feature, the cells of the profile (:mod:`headwater.drift_profile`) are merged into at most
  ``max_bins`` cells whose expected count in a window of ``n`` rows is at least ``min_expected``
  (numeric: adjacent fine bins, by equal reference mass; categorical: rare categories pooled). The
  merging depends only on the profile and ``n``, never on the window's values, so the null
  distribution stays intact;
- the statistic is the **two-sample Pearson chi-square of homogeneity** between the reference counts
  and the window counts, ``X2 = sum_j (W_j N - R_j n)^2 / (n N (W_j + R_j))`` with ``k - 1`` degrees of
  freedom. Being two-sample it accounts for the reference's own sampling noise, so the alarm rate stays
  at its nominal level whatever the ratio of window size ``n`` to reference size ``N`` (testing against
  the stored shares as if exact alarms in 28-30 % of windows at ``n = N``). When rows come in clusters
  (ALS events by user) a second-order Rao-Scott correction with an F reference accounts for the
  within-cluster likeness (:func:`rao_scott`);
- the ``m`` per-feature p-values are corrected with **Holm** (family-wise); the window alarms when any
  adjusted p-value is at most ``alpha``. So data from the training distribution alarms in at most (and,
  with weakly dependent features, close to) ``alpha`` of the windows.

Why (measured on simulated mixed tabular data, 500-3,000 windows per cell): one statistic for numeric
and categorical features with one calibration; only counts are needed (no stored sample: KS and
Anderson-Darling would need one per feature, 800 kB at 100k rows); it stays calibrated with ties where
KS turns conservative; 0.43 ms per 10,000-row window and feature against 9 ms for KS against a
100k-row sample. scipy supplies the chi-square, F and binomial tails. A fixed "PSI > 0.1" rule alarms in
40 % of identical 100-row windows for one feature (``tests/test_drift_profile.py``).

>>> import json
>>> import numpy as np
>>> from headwater.drift_profile import build_profile
>>> rng = np.random.default_rng(0)
>>> train = {"age": rng.normal(40, 10, 50_000), "plan": rng.choice(["free", "pro", "team"], 50_000)}
>>> detector = DriftDetector(json.loads(json.dumps(build_profile(train, categorical=["plan"]))), alpha=0.01)
>>> same = detector.check({"age": rng.normal(40, 10, 1000), "plan": rng.choice(["free", "pro", "team"], 1000)})
>>> same.alarm
False
>>> shifted = detector.check({"age": rng.normal(43, 10, 1000), "plan": rng.choice(["free", "pro", "team"], 1000)})
>>> shifted.alarm, shifted.worst
(True, 'age')
>>> sorted(shifted.scores())
['age', 'plan']
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from headwater.drift_profile import FORMAT, missing_mask

# --- cells: merging profile bins for a window of n rows -----------------------------------------

@dataclass
class _Cells:
    ref: np.ndarray          # reference count per cell
    lookup: np.ndarray       # fine index (numeric: bin; categorical: category) -> cell
    missing_cell: int
    other_cell: int = -1     # categorical only: values not among the profile's categories


def _merge_small(ref: np.ndarray, n: int, total: int, min_expected: float) -> np.ndarray:
    """Group ids for adjacent cells so that each group's expected window count is >= min_expected."""
    group = np.arange(ref.size)
    expected = ref / total * n
    while True:
        sums = np.bincount(group, weights=expected)
        ids = np.unique(group)
        small = [g for g in ids if sums[g] < min_expected]
        if not small or ids.size == 1:
            return np.unique(group, return_inverse=True)[1]
        g = min(small, key=lambda k: sums[k])
        pos = int(np.flatnonzero(ids == g)[0])
        if pos == 0:
            other = ids[1]
        elif pos == ids.size - 1:
            other = ids[-2]
        else:
            other = ids[pos - 1] if sums[ids[pos - 1]] <= sums[ids[pos + 1]] else ids[pos + 1]
        group[group == g] = other


def _numeric_cells(feat: dict, n: int, max_bins: int, min_expected: float) -> _Cells:
    counts = np.asarray(feat["counts"], dtype=float)
    total = counts.sum() + feat["missing"]
    valid_total = counts.sum()
    k = int(max(1, min(max_bins, math.floor(n * valid_total / max(total, 1) / min_expected))))
    # equal reference mass groups of adjacent fine bins
    cum = np.cumsum(counts) / max(valid_total, 1)
    mid = cum - counts / max(valid_total, 1) / 2          # each fine bin's centre of mass
    group = np.minimum((mid * k).astype(int), k - 1)
    group = np.unique(group, return_inverse=True)[1]
    ref = np.bincount(group, weights=counts)
    merged = _merge_small(ref, n, total, min_expected)
    group = merged[group]
    ref = np.bincount(group, weights=counts)
    if feat["missing"] / max(total, 1) * n >= min_expected:
        missing_cell = ref.size
        ref = np.append(ref, feat["missing"])
    else:   # too rare to be a cell of its own at this window size: share the smallest cell
        missing_cell = int(np.argmin(ref))
        ref[missing_cell] += feat["missing"]
    return _Cells(ref=ref, lookup=group, missing_cell=missing_cell)


def _categorical_cells(feat: dict, n: int, max_bins: int, min_expected: float) -> _Cells:
    counts = np.asarray(feat["counts"], dtype=float)
    total = counts.sum() + feat["other"] + feat["missing"]
    expected = counts / max(total, 1) * n
    # categories are stored most frequent first; keep those with enough expected count
    own = int(min(np.sum(expected >= min_expected), max_bins - 1))
    lookup = np.full(counts.size, own)
    lookup[:own] = np.arange(own)
    ref = np.append(counts[:own], counts[own:].sum() + feat["other"])
    rest = own
    if feat["missing"] / max(total, 1) * n >= min_expected:
        missing_cell = ref.size
        ref = np.append(ref, feat["missing"])
    else:
        missing_cell = rest
        ref[rest] += feat["missing"]
    if ref[rest] / max(total, 1) * n < min_expected and own > 0:
        # the pooled cell is too small: fold it into the least frequent kept category
        target = own - 1
        ref[target] += ref[rest]
        lookup[lookup == rest] = target
        if missing_cell == rest:
            missing_cell = target
        ref = np.delete(ref, rest)
        lookup[lookup > rest] -= 1
        missing_cell = missing_cell - 1 if missing_cell > rest else missing_cell
        rest = target
    return _Cells(ref=ref, lookup=lookup, missing_cell=missing_cell, other_cell=rest)


# --- the detector --------------------------------------------------------------------------------

@dataclass
class FeatureDrift:
    """One feature's result in one window."""

    name: str
    statistic: float
    dof: int
    p_value: float
    p_adjusted: float = 1.0
    cells: int = 0
    deff: float = 1.0                    # mean design effect (clustered rows; 1 for independent rows)
    mean_shift_sd: float | None = None   # numeric: (window mean - reference mean) / reference sd
    total_variation: float = 0.0         # 0.5 sum |window share - reference share| over the cells

    @property
    def score(self) -> float:
        """-log10 of the Holm-adjusted p-value (0 = nothing; > -log10(alpha) = alarming)."""
        return float(min(300.0, max(0.0, -math.log10(max(self.p_adjusted, 1e-300)))))


@dataclass
class DriftReport:
    """The detector's answer for one window: ``alarm`` and the per-feature details."""

    alarm: bool
    alpha: float
    rows: int
    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def worst(self) -> str | None:
        return min(self.features, key=lambda f: f.p_value).name if self.features else None

    def scores(self) -> dict[str, float]:
        return {f.name: f.score for f in self.features}

    def to_dict(self) -> dict[str, Any]:
        return {"alarm": self.alarm, "alpha": self.alpha, "rows": self.rows, "worst": self.worst,
                "features": [{k: getattr(f, k) for k in ("name", "statistic", "dof", "p_value", "p_adjusted",
                                                         "cells", "deff", "mean_shift_sd", "total_variation")}
                             | {"score": f.score} for f in self.features]}

    def mlflow_metrics(self, prefix: str = "drift") -> dict[str, float]:
        """Flat metrics for ``mlflow.log_metrics`` (logged with the window's step)."""
        out = {f"{prefix}.alarm": float(self.alarm), f"{prefix}.rows": float(self.rows)}
        for f in self.features:
            out[f"{prefix}.score.{f.name}"] = f.score
            out[f"{prefix}.tv.{f.name}"] = f.total_variation
        return out

    def prometheus(self, labels: Mapping[str, str] | None = None) -> str:
        """Prometheus text-format lines (gauges) for ``/metrics``."""
        base = ",".join(f'{k}="{v}"' for k, v in (labels or {}).items())
        sep = "," if base else ""
        lines = ["# TYPE headwater_drift_alarm gauge", f"headwater_drift_alarm{{{base}}} {int(self.alarm)}",
                 "# TYPE headwater_drift_score gauge"]
        # a metric family's samples must stay together, after its TYPE line
        lines += [f'headwater_drift_score{{{base}{sep}feature="{f.name}"}} {f.score:.6g}' for f in self.features]
        lines.append("# TYPE headwater_drift_p_value gauge")
        lines += [f'headwater_drift_p_value{{{base}{sep}feature="{f.name}"}} {f.p_adjusted:.6g}'
                  for f in self.features]
        return "\n".join(lines) + "\n"

    def console(self) -> str:
        """A small text table, worst feature first."""
        rows = [f"drift {'ALARM' if self.alarm else 'ok'} over {self.rows} rows (alpha {self.alpha})"]
        for f in sorted(self.features, key=lambda f: f.p_value):
            shift = "" if f.mean_shift_sd is None else f"  mean shift {f.mean_shift_sd:+.2f} sd"
            rows.append(f"  {f.name:<24} score {f.score:6.2f}  p_adj {f.p_adjusted:.3g}  "
                        f"TV {f.total_variation:.3f}{shift}")
        return "\n".join(rows)


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (family-wise error control under any dependence)."""
    p = np.asarray(p, dtype=float)
    m = p.size
    order = np.argsort(p)
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


def chi2_homogeneity(ref: np.ndarray, win: np.ndarray) -> tuple[float, int]:
    """Two-sample Pearson chi-square between count vectors (cells with no count on either side dropped)."""
    ref = np.asarray(ref, dtype=float)
    win = np.asarray(win, dtype=float)
    keep = (ref + win) > 0
    ref, win = ref[keep], win[keep]
    big_n, n = ref.sum(), win.sum()
    if ref.size < 2 or n == 0 or big_n == 0:
        return 0.0, 0
    x2 = float(np.sum((win * big_n - ref * n) ** 2 / (ref + win)) / (n * big_n))
    return x2, int(ref.size - 1)


def rao_scott(cell: np.ndarray, clusters: np.ndarray, ref: np.ndarray, k: int) -> tuple[float, float, float, float]:
    """Second-order Rao-Scott (Satterthwaite) correction of the homogeneity chi-square for clustered rows.

    ``cell`` is each window row's cell, ``clusters`` its cluster key (e.g. the user), ``ref`` the
    reference counts per cell.  The window's cell shares get a cluster-robust covariance
    (``sum_c (W_c - n_c p)(W_c - n_c p)' / n^2 * C/(C-1)``); the reference side keeps its multinomial
    covariance (it is the whole training data, much larger than a window).  With ``delta_i`` the
    eigenvalues of the design-effect matrix, ``X2 * sum(delta)/sum(delta^2)`` is referred to an F
    distribution with ``sum(delta)^2/sum(delta^2)`` and ``C - 1`` degrees of freedom (the second: a
    window of few clusters estimates its covariance poorly).
    Returns (adjusted statistic, its dof, the F denominator dof, the mean design effect).
    """
    n = cell.size
    big_n = ref.sum()
    win = np.bincount(cell, minlength=k).astype(float)
    x2, dof = chi2_homogeneity(ref, win)
    if dof == 0:
        return 0.0, 0.0, 1.0, 1.0
    _, cid = np.unique(clusters, return_inverse=True)
    cid = cid.ravel()
    c = int(cid.max()) + 1
    if c < 2:
        return 0.0, 0.0, 1.0, 1.0
    joint = np.bincount(cid * k + cell, minlength=c * k).reshape(c, k).astype(float)
    pw = win / n
    dev = joint - joint.sum(axis=1, keepdims=True) * pw[None, :]
    v_w = dev.T @ dev / n ** 2 * c / (c - 1)
    pbar = (win + ref) / (n + big_n)
    p_mat = np.diag(pbar) - np.outer(pbar, pbar)
    idx = np.flatnonzero((win + ref) > 0)[:-1]          # drop one cell: the shares sum to one
    sub = np.ix_(idx, idx)
    d = np.linalg.solve(p_mat[sub], (v_w + p_mat / big_n)[sub]) / (1 / n + 1 / big_n)
    delta = np.maximum(np.real(np.linalg.eigvals(d)), 1e-9)
    factor = delta.sum() / (delta ** 2).sum()
    return x2 * factor, delta.sum() * factor, float(c - 1), float(delta.mean())


def _assign_numeric(feat: dict, cells: _Cells, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    fine = np.searchsorted(np.asarray(feat["edges"]), x, side="right")
    cell = cells.lookup[np.minimum(fine, cells.lookup.size - 1)]
    return np.where(np.isnan(x), cells.missing_cell, cell)


def _assign_categorical(feat: dict, cells: _Cells, values: np.ndarray, index: dict[str, int]) -> np.ndarray:
    values = np.asarray(values)
    missing = missing_mask(values)
    try:
        uniq, inv = np.unique(values, return_inverse=True)    # on the raw values: fast for ints
    except TypeError:                                          # mixed object values (e.g. None and str)
        uniq, inv = np.unique(values.astype(str), return_inverse=True)
    fine = np.array([index.get(u, -1) for u in uniq.astype(str).tolist()], dtype=np.int64)
    cell_of_uniq = np.where(fine >= 0, cells.lookup[np.maximum(fine, 0)], cells.other_cell)
    return np.where(missing, cells.missing_cell, cell_of_uniq[inv.ravel()])


class DriftDetector:
    """Compares windows of live rows with a profile; ``alpha`` is the per-window false-alarm rate.

    ``max_bins`` caps the cells per feature (power vs degrees of freedom: 10 is near-best for shifts
    of location and scale, see REPORT.md); ``min_expected`` is the smallest expected window count of a
    cell (keeps the chi-square approximation accurate at small windows).
    """

    def __init__(self, profile: Mapping[str, Any], alpha: float = 0.01, max_bins: int = 10,
                 min_expected: float = 5.0, features: Sequence[str] | None = None):
        if profile.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} profile")
        self.profile = profile
        self.alpha = alpha
        self.max_bins = max_bins
        self.min_expected = min_expected
        self.features = [f for f in profile["features"] if features is None or f["name"] in features]
        self._index = {f["name"]: {c: i for i, c in enumerate(f["categories"])}
                       for f in self.features if f["type"] == "categorical"}
        self._cells: dict[tuple[str, int], _Cells] = {}

    def cells(self, feat: dict, n: int) -> _Cells:
        key = (feat["name"], n)
        if key not in self._cells:
            build = _numeric_cells if feat["type"] == "numeric" else _categorical_cells
            if len(self._cells) > 4096:
                self._cells.clear()
            self._cells[key] = build(feat, n, self.max_bins, self.min_expected)
        return self._cells[key]

    def check_feature(self, feat: dict, values: Any, clusters: Any = None) -> FeatureDrift:
        values = np.asarray(values)
        n = values.shape[0]
        cells = self.cells(feat, n)
        if feat["type"] == "numeric":
            cell = _assign_numeric(feat, cells, values)
        else:
            cell = _assign_categorical(feat, cells, values, self._index[feat["name"]])
        k = cells.ref.size
        win = np.bincount(cell, minlength=k).astype(float)
        deff = 1.0
        if clusters is None:
            x2, dof = chi2_homogeneity(cells.ref, win)
            p = float(stats.chi2.sf(x2, dof)) if dof > 0 else 1.0
        else:
            x2, dof_f, df2, deff = rao_scott(cell, np.asarray(clusters), cells.ref, k)
            p = float(stats.f.sf(x2 / dof_f, dof_f, df2)) if dof_f > 0 else 1.0
            dof = int(round(dof_f))
        shift = None
        if feat["type"] == "numeric" and feat.get("std"):
            v = values.astype(float)
            v = v[~np.isnan(v)]
            shift = float((v.mean() - feat["mean"]) / feat["std"]) if v.size else None
        tv = 0.5 * float(np.abs(win / max(n, 1) - cells.ref / max(cells.ref.sum(), 1)).sum())
        return FeatureDrift(feat["name"], x2, dof, p, cells=k, deff=deff, mean_shift_sd=shift, total_variation=tv)

    def check(self, window: Mapping[str, Any], clusters: Any = None) -> DriftReport:
        """Test one window (name -> column; missing columns are reported as missing values)."""
        results, rows = [], None
        for feat in self.features:
            if feat["name"] in window:
                values = np.asarray(window[feat["name"]])
            else:
                values = np.full(rows or 0, np.nan if feat["type"] == "numeric" else None, dtype=object
                                 if feat["type"] == "categorical" else float)
            rows = values.shape[0] if rows is None else rows
            results.append(self.check_feature(feat, values, clusters))
        return finish_report(results, self.alpha, rows or 0)


def finish_report(results: list[FeatureDrift], alpha: float, rows: int) -> DriftReport:
    adj = holm([r.p_value for r in results]) if results else []
    for r, a in zip(results, adj):
        r.p_adjusted = float(a)
    return DriftReport(alarm=bool(len(results) and min(adj) <= alpha), alpha=alpha, rows=rows, features=results)
