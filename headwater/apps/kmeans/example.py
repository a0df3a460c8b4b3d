"""Two clusters and points for the shared contract checks (:mod:`headwater.app_checks`).

>>> example().state
KMeansClusters(k=2, features=2, points=20)
"""
from __future__ import annotations

import numpy as np

from headwater.api import AppExample
from headwater.apps.kmeans.clusters import KMeansClusters


def example() -> AppExample:
    clusters = KMeansClusters(["a", "b"], np.array([[0.0, 0.0], [5.0, 5.0]]), np.array([10.0, 10.0]))
    return AppExample({"input-schema.feature-names": ["a", "b"]}, clusters,
                      ["0.5,0.2", "4.5,5.5", "5.2,4.9", "-0.3,0.1"])
