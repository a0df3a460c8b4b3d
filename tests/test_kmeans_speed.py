"""KMeansSpeedModel: the streaming update against a direct numpy computation, UP payloads, snapshots."""
from __future__ import annotations

import math

import numpy as np
import pytest

from headwater.apps.kmeans.clusters import KMeansClusters
from headwater.apps.kmeans.streaming import decay_settings
from headwater.input_format import InputSchema, SchemaCSVFormat
from headwater.messages import decode_update, encode_up
from headwater.registry import RegisteredModel
from serving_layer.kmeans import KMeansServingModel
from speed_layer.kmeans import KMeansSpeedModel

FEATURES = ["a", "b", "c"]
FORMAT = SchemaCSVFormat(InputSchema(["key", *FEATURES], ids=["key"]))


def start_clusters() -> KMeansClusters:
    rng = np.random.default_rng(11)
    return KMeansClusters(FEATURES, rng.normal(0, 5, (6, 3)), rng.integers(1, 40, 6).astype(float))


def lines_of(points: np.ndarray) -> list[str]:
    return [f"k{n}," + ",".join(repr(float(v)) for v in p) for n, p in enumerate(points)]


def direct_update(centers, counts, points, decay, time_unit):
    """The rule written out cluster by cluster, independently of headwater.apps.kmeans.streaming."""
    centers, counts = centers.copy(), counts.copy()
    distances = ((points[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    nearest = distances.argmin(axis=1)
    a = decay ** len(points) if time_unit == "points" else decay
    for j in range(len(centers)):
        mine = points[nearest == j]
        weight = a * counts[j] + len(mine)
        if len(mine):
            centers[j] = centers[j] + len(mine) / weight * (mine.mean(axis=0) - centers[j])
        counts[j] = weight
    return centers, counts


@pytest.mark.parametrize("decay, time_unit", [(1.0, "batches"), (0.5, "batches"), (0.98, "points"), (0.0, "batches")])
def test_streaming_update_matches_direct_numpy(decay, time_unit):
    rng = np.random.default_rng(5)
    model = KMeansSpeedModel(start_clusters(), decay, time_unit)
    centers, counts = start_clusters().centers, start_clusters().counts
    for _ in range(4):  # several micro-batches, so weights carry over
        points = rng.normal(0, 6, (rng.integers(5, 50), 3))
        model.learn_many(FORMAT.parse(lines_of(points)).table)
        centers, counts = direct_update(centers, counts, points, decay, time_unit)
        np.testing.assert_allclose(model.clusters.centers, centers, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(model.clusters.counts, counts, rtol=1e-12)


def test_payloads_reproduce_the_speed_model_in_serving_even_when_applied_twice():
    rng = np.random.default_rng(9)
    speed = KMeansSpeedModel(start_clusters(), decay=0.9)
    serving = KMeansServingModel(start_clusters(), version=1)
    for _ in range(3):
        payloads = speed.learn_many(FORMAT.parse(lines_of(rng.normal(0, 6, (30, 3)))).table)
        assert {p[1] for p in payloads} == set(range(6))  # decay changes every weight
        for raw in [encode_up(p) for p in payloads] * 2:  # through the wire format, replayed
            serving.apply_update(decode_update(raw).payload)
    np.testing.assert_array_equal(serving.clusters.centers, speed.clusters.centers)
    np.testing.assert_array_equal(serving.clusters.counts, speed.clusters.counts)


def test_only_moved_centres_are_published_without_decay():
    model = KMeansSpeedModel(KMeansClusters(["a", "b", "c"], [[0, 0, 0], [10, 10, 10]], [3, 3]))
    payloads = model.learn_many(FORMAT.parse(["k,1,1,1", "k,0,0,2"]).table)
    assert len(payloads) == 1 and payloads[0][:2] == ["C", 0] and payloads[0][3] == 5.0
    np.testing.assert_allclose(payloads[0][2], [0.2, 0.2, 0.6])
    assert model.learn_many(FORMAT.parse([]).table) == []


def test_decay_settings_prefer_half_life(make_config):
    assert decay_settings(make_config(app="kmeans", **{"kmeans.decay-factor": 0.7, "kmeans.half-life": None,
                                                       "kmeans.time-unit": "batches"})) == (0.7, "batches")
    decay, unit = decay_settings(make_config(app="kmeans", **{"kmeans.half-life": 10.0, "kmeans.time-unit": "points"}))
    assert unit == "points" and math.isclose(decay ** 10, 0.5)


def test_snapshot_artifacts_round_trip(make_config, tmp_path):
    model = KMeansSpeedModel(start_clusters(), 0.5, "points")
    model.learn_many(FORMAT.parse(lines_of(np.ones((3, 3)))).table)
    copy = model.copy()
    model.learn_many(FORMAT.parse(lines_of(np.full((3, 3), 4.0))).table)
    assert not np.array_equal(copy.clusters.centers, model.clusters.centers)  # the copy is independent
    copy.save(tmp_path)
    config = make_config(app="kmeans", **{"kmeans.decay-factor": 0.5, "kmeans.half-life": None,
                                          "kmeans.time-unit": "points"})
    loaded = KMeansSpeedModel.from_registered(RegisteredModel("m", 3, tmp_path), config)
    np.testing.assert_array_equal(loaded.clusters.centers, copy.clusters.centers)
    np.testing.assert_array_equal(loaded.clusters.counts, copy.clusters.counts)
    assert loaded.clusters.features == FEATURES and (loaded.decay, loaded.time_unit) == (0.5, "points")
    assert KMeansServingModel.from_registered(RegisteredModel("m", 3, tmp_path), config).version == 3


def test_bad_payloads_raise_value_error():
    model = KMeansSpeedModel(start_clusters())
    for payload in (["X", 0, [1.0, 2.0, 3.0], 1.0], ["C", 6, [1.0, 2.0, 3.0], 1.0], ["C", 0, [1.0], 1.0],
                    ["C", 0, [1.0, float("inf"), 3.0], 1.0], ["C", True, [1.0, 2.0, 3.0], 1.0], "C"):
        with pytest.raises(ValueError):
            model.apply_update(payload)


def test_a_dying_cluster_is_reseated_by_splitting_the_heaviest_and_serving_follows(tmp_path):
    model = KMeansSpeedModel(start_clusters(), decay=0.5, time_unit="batches", dying_share=0.01)
    serving = KMeansServingModel(start_clusters())
    lightest = int(np.argmin(model.clusters.counts))
    heaviest_before = model.clusters.centers.copy()
    near_the_others = np.delete(heaviest_before, lightest, axis=0)
    batches = [FORMAT.parse(lines_of(np.repeat(near_the_others, 20, axis=0))).table for _ in range(12)]
    for n, batch in enumerate(batches):  # the points keep away from the lightest centre: its weight halves
        if n == 3:
            model.copy().save(tmp_path / "snapshot")
        for payload in model.learn_many(batch):
            serving.apply_update(payload)
    counts = model.clusters.counts
    assert counts.min() >= 0.01 * counts.max(), "the dying centre was not re-seated"
    assert not np.allclose(model.clusters.centers[lightest], heaviest_before[lightest])
    np.testing.assert_array_equal(serving.clusters.centers, model.clusters.centers)
    np.testing.assert_array_equal(serving.clusters.counts, model.clusters.counts)
    # a speed layer restarted from a snapshot taken before the split re-folds the later batches into
    # exactly the centres it published the first time
    restarted = KMeansSpeedModel(KMeansClusters.load(tmp_path / "snapshot"), 0.5, "batches", 0.01)
    for batch in batches[3:]:
        restarted.learn_many(batch)
    np.testing.assert_array_equal(restarted.clusters.centers, model.clusters.centers)
    np.testing.assert_array_equal(restarted.clusters.counts, model.clusters.counts)
