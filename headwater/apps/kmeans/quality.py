"""Clustering quality in numpy: exact silhouette, Davies-Bouldin, Dunn and SSE from per-cluster statistics.

Davies-Bouldin, Dunn and SSE need only, per cluster, the number of points, the sum of their distances to
the centre and the sum of squared distances (:class:`ClusterStatistics`), which one pass over any
amount of data produces (the batch layer sums them in Spark). The silhouette needs all pairwise
distances, so it is computed exactly on a sample, in chunks of rows so memory stays at
chunk × sample.

>>> import numpy as np
>>> points = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
>>> centers = np.array([[0.0, 0.5], [10.0, 0.5]])
>>> stats = ClusterStatistics.of(centers, points)
>>> stats.counts.tolist(), round(stats.sse, 3), round(davies_bouldin(centers, stats), 3)
([2.0, 2.0], 1.0, 0.1)
>>> round(silhouette(points, np.array([0, 0, 1, 1])), 4)
0.9002
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headwater.apps.kmeans.streaming import nearest_centers


@dataclass(frozen=True)
class ClusterStatistics:
    """Per cluster: points assigned, sum of their distances to the centre, sum of squared distances."""

    counts: np.ndarray
    distance_sums: np.ndarray
    squared_sums: np.ndarray

    @classmethod
    def of(cls, centers: np.ndarray, points: np.ndarray) -> ClusterStatistics:
        index, distance = nearest_centers(centers, points)
        k = len(centers)
        return cls(np.bincount(index, minlength=k).astype(np.float64),
                   np.bincount(index, weights=distance, minlength=k),
                   np.bincount(index, weights=distance ** 2, minlength=k))

    @property
    def sse(self) -> float:
        """Sum of squared distances of every point to its nearest centre."""
        return float(self.squared_sums.sum())

    @property
    def mean_squared_distance(self) -> float:
        total = self.counts.sum()
        return float(self.sse / total) if total else float("nan")


def davies_bouldin(centers: np.ndarray, stats: ClusterStatistics) -> float:
    """Mean over non-empty clusters of the worst (Sᵢ + Sⱼ) / d(cᵢ, cⱼ); lower is better.

    Sᵢ is the mean distance of cluster i's points to its centre. NaN with fewer than two non-empty
    clusters, where the index is undefined.
    """
    used = stats.counts > 0
    if used.sum() < 2:
        return float("nan")
    c = np.asarray(centers, dtype=np.float64)[used]
    scatter = stats.distance_sums[used] / stats.counts[used]
    separation = np.sqrt(np.maximum(((c[:, None, :] - c[None, :, :]) ** 2).sum(axis=2), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (scatter[:, None] + scatter[None, :]) / separation
    np.fill_diagonal(ratio, -np.inf)
    # two centres at the same place make the ratio infinite, which is what the index means there
    ratio[np.isnan(ratio)] = np.inf
    return float(ratio.max(axis=1).mean())


def dunn_index(centers: np.ndarray, stats: ClusterStatistics) -> float:
    """Oryx's Dunn index: the smallest distance between two centres over the largest mean distance of a
    cluster's points to its centre; higher is better. NaN with fewer than two non-empty clusters.

    >>> stats = ClusterStatistics.of(np.array([[0.0], [10.0]]), np.array([[-1.0], [1.0], [10.0]]))
    >>> dunn_index(np.array([[0.0], [10.0]]), stats)
    10.0
    """
    used = stats.counts > 0
    if used.sum() < 2:
        return float("nan")
    c = np.asarray(centers, dtype=np.float64)[used]
    squared = ((c[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(squared, np.inf)
    largest_scatter = float((stats.distance_sums[used] / stats.counts[used]).max())
    with np.errstate(divide="ignore"):
        return float(np.sqrt(squared.min()) / largest_scatter)


def silhouette(points: np.ndarray, labels: np.ndarray, chunk_size: int = 1024) -> float:
    """Mean silhouette (b − a) / max(a, b) over all points, exact; points alone in a cluster score 0.

    NaN when fewer than two clusters have points.
    """
    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels)
    clusters, labels = np.unique(labels, return_inverse=True)
    if len(clusters) < 2:
        return float("nan")
    sizes = np.bincount(labels).astype(np.float64)
    members = np.zeros((len(points), len(clusters)))
    members[np.arange(len(points)), labels] = 1.0
    squared_norms = np.einsum("ij,ij->i", points, points)
    total = 0.0
    for start in range(0, len(points), chunk_size):
        rows = slice(start, start + chunk_size)
        own = labels[rows]
        squared = squared_norms[rows, None] - 2.0 * points[rows] @ points.T + squared_norms[None, :]
        sums = np.sqrt(np.maximum(squared, 0.0)) @ members  # (chunk, clusters): distance sums per cluster
        own_size = sizes[own]
        a = sums[np.arange(len(own)), own] / np.maximum(own_size - 1.0, 1.0)
        means = sums / sizes[None, :]
        means[np.arange(len(own)), own] = np.inf
        b = means.min(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(own_size > 1, (b - a) / np.maximum(a, b), 0.0)
        total += float(np.nan_to_num(s).sum())
    return total / len(points)


__all__ = ["ClusterStatistics", "davies_bouldin", "dunn_index", "silhouette"]
