"""The k-means demo's data and its live step: iris history, then streamed points pull a centre.

``headwater demo`` (:mod:`headwater.cli.demo`) loads :func:`history_lines` before the first batch
generation and, once the serving layer is ready, calls :func:`show_live_learning`: points near a probe
that the setosa centre owns are sent to ``<id>.input``; the speed layer moves that centre and publishes an UP, the
serving layer applies it, and ``/assign`` / ``/distanceToNearest`` of the probe show the move
(then the registry's ``speed`` snapshot shows it too). No batch generation runs in between.

>>> lines = history_lines()
>>> len(lines), lines[0]
(150, '5.1,3.5,1.4,0.2')
"""
from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from headwater.config import Config

# Between setosa's centre (about 5.0, 3.4, 1.5, 0.2) and the others, much nearer setosa: its
# points join setosa's cluster and drag that centre toward longer petals.
PROBE = (5.0, 3.4, 2.6, 0.4)
# printed by the demo as a URL to try
EXAMPLE_PATH = "/assign/5.1,3.5,1.4,0.2"


def iris_rows() -> np.ndarray:
    from sklearn.datasets import load_iris

    return load_iris().data


def history_lines(app: str = "kmeans") -> list[str]:
    """scikit-learn's bundled iris measurements as input lines (conf/kmeans.conf's schema)."""
    return [",".join(f"{v:g}" for v in row) for row in iris_rows()]


def points_near(probe, count: int, spread: float = 0.05, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    points = np.asarray(probe) + rng.normal(0.0, spread, (count, len(probe)))
    return [",".join(f"{v:.3f}" for v in row) for row in points]


def _get(base: str, path: str):
    import requests

    answer = requests.get(f"{base}{path}", headers={"Accept": "application/json"}, timeout=5)
    answer.raise_for_status()
    return answer.json()  # one datum: a bare value, as Oryx answers


def show_live_learning(config: Config, base: str, count: int = 30, timeout: float = 60) -> bool:
    """Stream ``count`` points near :data:`PROBE` and print how the serving layer's answer moves."""
    from headwater.kafka_producer import LineProducer

    datum = ",".join(f"{v:g}" for v in PROBE)
    cluster, before = _get(base, f"/assign/{datum}"), _get(base, f"/distanceToNearest/{datum}")
    print(f"\nprobe {datum}: cluster {cluster}, distance to its centre {before:.3f}")
    time.sleep(3)  # the speed query reads only records produced after its first trigger
    sent_at = time.monotonic()
    with LineProducer(config.kafka) as producer:
        producer.send_lines(config.input_topic, points_near(PROBE, count))
    print(f"sent {count} new points near the probe to {config.input_topic} (no batch run follows)")
    while time.monotonic() - sent_at < timeout:
        after = _get(base, f"/distanceToNearest/{datum}")
        if after < 0.9 * before:
            print(f"after {time.monotonic() - sent_at:.1f} s: cluster {_get(base, f'/assign/{datum}')}, "
                  f"distance {after:.3f} (the centre moved {before - after:.3f} toward the new points)")
            _show_snapshot(config, cluster, timeout)
            return True
        time.sleep(0.2)
    print(f"the centre did not move within {timeout:.0f} s; see var/logs/speed.log", file=sys.stderr)
    return False


def _show_snapshot(config: Config, cluster: int, timeout: float) -> None:
    from headwater.apps.kmeans.clusters import KMeansClusters
    from headwater.registry import CHAMPION, SPEED, TAG_BASE_VERSION, download_alias

    champion = download_alias(config, CHAMPION)
    interval = config.get("headwater.speed.snapshot-interval-sec")
    print(f"waiting for the speed layer's next registry snapshot (every {interval:g} s) ...")
    deadline = time.monotonic() + interval + timeout
    while time.monotonic() < deadline:
        snapshot = download_alias(config, SPEED)
        if snapshot is not None and snapshot.tags.get(TAG_BASE_VERSION) == str(champion.version):
            old = KMeansClusters.load(champion.path)
            new = KMeansClusters.load(snapshot.path)
            print(f"registry: champion version {champion.version} centre {cluster} "
                  f"{np.round(old.centers[cluster], 3).tolist()} ({old.counts[cluster]:.0f} points); speed "
                  f"snapshot version {snapshot.version}: {np.round(new.centers[cluster], 3).tolist()} "
                  f"({new.counts[cluster]:.1f} weighted points)")
            return
        time.sleep(1)
    print("no speed snapshot yet; it appears in the MLflow UI under the alias 'speed'", file=sys.stderr)
