"""The forest speed rule: decayed leaves against a direct computation, tree replacement after an abrupt drift,
replacement UPs replayed and restarted, and the stationary-stream guard."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from headwater.apps.forest.arrays import ForestArrays, Walk
from headwater.apps.forest.decay import Decay
from headwater.apps.forest.encoding import CategoricalEncoding
from headwater.apps.forest.example import random_forest_model, small_lines
from headwater.apps.forest.learning import ForestLearner
from headwater.apps.forest.model import ForestModel
from headwater.apps.forest.replacement import ReplacementSettings
from headwater.apps.forest.trees import sklearn_tree
from headwater.registry import RegisteredModel
from serving_layer.random_forest import RandomForestServingModel
from speed_layer.random_forest import RandomForestSpeedModel
from tests.forest_helpers import walk
from tests.test_random_forest_speed import parser


# ------------------------------------------------------------------------------ decayed leaf statistics
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("unit,half_life", [("batches", 2.0), ("points", 30.0), ("event-time", 5.0)])
def test_decayed_leaf_statistics_equal_a_direct_computation(task, unit, half_life):
    model = random_forest_model(task, seed=3)
    initial = model.forest.stats.copy()
    learner = ForestLearner(model, Decay.from_half_life(half_life, unit), time_feature="id")
    a = 0.5 ** (1 / half_life)
    rng = np.random.default_rng(5)
    events, event_time, points = [], 0.0, 0
    for batch in range(1, 8):
        lines = small_lines(task, int(rng.integers(1, 40)), seed=batch)
        times = event_time + np.cumsum(rng.exponential(1.0, len(lines)))
        event_time = float(times[-1])
        table = parser(task).parse(lines).table
        table = table.set_column(table.schema.get_field_index("id"), "id", pa.array([repr(float(t)) for t in times]))
        learner.learn(table)
        X, y, _ = model.encoding.known_rows(table)
        for row, label, t in zip(X, y, times):
            points += 1
            row_time = {"batches": batch, "points": points, "event-time": t}[unit]
            events.append(([walk(learner.forest, row, tree) for tree in range(learner.forest.num_trees)], label,
                           row_time))
    # S(now) = S0 · a^(now − start) + Σ_e x_e · a^(now − t_e), leaf by leaf, event by event
    forest = learner.forest
    start = {"batches": 0.0, "points": 0.0, "event-time": float(forest.asof.min())}[unit]
    direct = initial * a ** (forest.clock - start)
    for leaves, label, row_time in events:
        for leaf in leaves:
            x = np.eye(initial.shape[1])[int(label)] if task == "classification" else [1.0, label, label * label]
            direct[leaf] += a ** (forest.clock - row_time) * np.asarray(x)
    aged = forest.stats * learner.decay.age(forest.clock, forest.asof)[:, None]
    leaf = forest.feature < 0
    np.testing.assert_allclose(aged[leaf], direct[leaf], rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------------ tree replacement
def abrupt_stream(n: int = 30_000, flip_at: int = 20_000, seed: int = 3):
    """Four uniform features; the label is x0 > 0.5 until ``flip_at``, then x2 > 0.3; 5 % label noise."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (n, 4))
    y = np.where(np.arange(n) < flip_at, X[:, 0] > 0.5, X[:, 2] > 0.3).astype(int)
    return X, np.where(rng.uniform(size=n) < 0.05, 1 - y, y)


def batch_model(X, y, task="classification", trees=10, depth=8, seed=3) -> ForestModel:
    """A scikit-learn forest in the layers' form, standing in for the batch layer's Spark forest."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    kind = RandomForestClassifier if task == "classification" else RandomForestRegressor
    fitted = kind(trees, max_depth=depth, max_features="sqrt", random_state=seed).fit(X, y)
    forest = ForestArrays.from_trees(task, X.shape[1], [sklearn_tree(e, task, 2) for e in fitted.estimators_])
    names = [f"x{i}" for i in range(X.shape[1])]
    return ForestModel(forest, CategoricalEncoding(names, {"y": ["0", "1"]} if task == "classification" else {},
                                                   target="y"))


def rows(X, y) -> pa.Table:
    return pa.table({**{f"x{i}": X[:, i] for i in range(X.shape[1])}, "y": [str(v) for v in y]})


DRIFT = ReplacementSettings(window_rows=4000, tree_depth=8)


def replay(model: ForestModel, X, y, start: int, settings=DRIFT, chunk: int = 1000):
    """Prequential replay through the speed model: (speed model, UP payloads through JSON, accuracy per chunk)."""
    speed = RandomForestSpeedModel(ForestLearner(model.copy(), Decay.from_half_life(2000), settings))
    log, accuracy = [], []
    for a in range(start, len(y), chunk):
        batch = rows(X[a:a + chunk], y[a:a + chunk])
        accuracy.append(1.0 - float(np.nanmean(speed.score_many(batch)["error"])))
        log.extend(json.loads(json.dumps(speed.learn_many(batch))))
    return speed, log, accuracy


@pytest.fixture(scope="module")
def drifted():
    X, y = abrupt_stream()
    model = batch_model(X[:10_000], y[:10_000])
    speed, log, accuracy = replay(model, X, y, 10_000)
    return model, speed, log, accuracy, X


def test_a_tree_is_replaced_after_an_abrupt_drift_and_serving_predicts_as_the_speed_layer(drifted):
    model, speed, log, accuracy, X = drifted
    tree_ups = [i for i, p in enumerate(log) if p[0] == "T"]
    assert tree_ups, "no tree was replaced after the drift"
    # the decay clock counts points from the batch model: replayed chunk 10 (the drift) is as of 11,000
    assert 11_000 <= min(log[i][2] for i in tree_ups) <= 13_000, "a tree was replaced before the drift, or late"
    assert np.mean(accuracy[:10]) > 0.9 and min(accuracy[10:12]) < 0.8, "the drift at chunk 10 did not show"
    assert np.mean(accuracy[-5:]) > 0.9, "the speed layer did not recover from the drift"
    serving = RandomForestServingModel(model.copy(), version=1)
    for payload in log:
        serving.apply_update(payload)
    probe = rows(X[:3000], np.zeros(3000, int))
    assert serving.model.predict(probe) == speed.model.predict(probe)
    assert serving.state_summary()["tree_sids"] == speed.state_summary()["tree_sids"] != model.forest.tree_sids
    np.testing.assert_array_equal(serving.model.forest.stats, speed.model.forest.stats)
    assert serving.updates_ignored == 0
    assert max(len(json.dumps(log[i])) for i in tree_ups) < 1_000_000   # far below Kafka's record limit


def test_replacement_updates_are_idempotent_and_survive_a_speed_layer_restart(drifted, make_config, tmp_path):
    model, speed, log, _, X = drifted
    expected = speed.state_summary()

    def same(summary):
        assert summary["tree_sids"] == expected["tree_sids"]
        np.testing.assert_array_equal(summary["stats"], expected["stats"])
        np.testing.assert_array_equal(summary["asof"], expected["asof"])

    twice = RandomForestServingModel(model.copy())
    for payload in log:                         # every payload applied twice in a row
        twice.apply_update(payload)
        twice.apply_update(payload)
    same(twice.state_summary())
    for payload in log:                         # then the whole topic once more from the start
        twice.apply_update(payload)
    same(twice.state_summary())

    # a speed snapshot taken after half the replay; a serving replica loads it and follows the topic
    # from 5 UPs before the snapshot's offset
    X, y = abrupt_stream()
    config = make_config(app="rdf-classification", **{
        "input-schema.feature-names": ["x0", "x1", "x2", "x3", "y"], "input-schema.categorical-features": ["y"],
        "input-schema.target-feature": "y", "rdf.drift.window-rows": 4000, "rdf.drift.tree-depth": 8})
    first, first_log, _ = replay(model, X[:20_000], y[:20_000], 10_000)
    assert log[:len(first_log)] == first_log
    first.copy().save(tmp_path / "snapshot")
    replica = RandomForestServingModel.from_registered(RegisteredModel("m", 2, tmp_path / "snapshot"), config)
    for payload in log[len(first_log) - 5:]:
        replica.apply_update(payload)
    same(replica.state_summary())
    # a restarted speed layer: the restored detectors, recent rows and candidate trees re-fold and learn
    # on exactly as before the restart (through the real runner: tests/integration/test_forest_drift.py)
    resumed = RandomForestSpeedModel.from_registered(RegisteredModel("m", 2, tmp_path / "snapshot"), config)
    for a in range(20_000, 30_000, 1000):
        resumed.learn_many(rows(X[a:a + 1000], y[a:a + 1000]))
    same(resumed.state_summary())


def test_stale_and_foreign_tree_updates_are_ignored(drifted):
    model, _, log, _, _ = drifted
    tree_up = next(p for p in log if p[0] == "T")
    serving = RandomForestServingModel(model.copy())
    foreign = [tree_up[0], "another-forest", *tree_up[2:]]
    stale = [*tree_up[:4], "not-the-current-tree", *tree_up[5:]]
    before = serving.state_summary()["tree_sids"]
    for payload in (foreign, stale):
        serving.apply_update(payload)
    assert serving.state_summary()["tree_sids"] == before and serving.updates_ignored == 2
    with pytest.raises(ValueError, match="children"):
        nodes = len(tree_up[6]["left"])
        serving.apply_update([*tree_up[:6], {**tree_up[6], "left": [nodes] * nodes}])


def test_a_walk_is_shared_between_versions_of_a_forest_for_the_trees_they_have_in_common(drifted):
    model, speed, _, _, X = drifted
    before = model.forest
    replaced = speed.model.forest
    partly = before.with_trees({3: replaced.tree(3), 7: replaced.tree(7)})   # other sizes, other node offsets
    probe, other = X[:500], X[500:1000]
    for old, new in ((before, partly), (partly, before), (before, replaced), (partly, partly)):
        walked = Walk(old, probe.copy(), old.leaves(probe))
        np.testing.assert_array_equal(new.leaves_sharing(probe, walked), new.leaves(probe))
        np.testing.assert_array_equal(new.leaves_sharing(other, walked), new.leaves(other))   # other rows: walked


def test_scoring_then_learning_shares_one_walk_and_publishes_what_learning_alone_does(drifted):
    model, speed, _, _, X = drifted
    _, y = abrupt_stream()
    shared = RandomForestSpeedModel(ForestLearner(model.copy(), Decay.from_half_life(2000), DRIFT))
    alone = RandomForestSpeedModel(ForestLearner(model.copy(), Decay.from_half_life(2000), DRIFT))
    for a in range(10_000, 30_000, 1000):
        batch = rows(X[a:a + 1000], y[a:a + 1000])
        # the score (walk and leaf statistics kept for learning) against a direct prediction of the forest as it is
        direct = (alone.model.forest.predict(X[a:a + 1000]) != y[a:a + 1000]).astype(float)
        np.testing.assert_array_equal(shared.score_many(batch)["error"], direct)
        # the drift detectors' per-tree scores come from the scored statistics: the same UPs as a fresh walk
        assert json.loads(json.dumps(shared.learn_many(batch))) == json.loads(json.dumps(alone.learn_many(batch)))
    assert shared.learner.replacement.replaced == speed.learner.replacement.replaced > 0


def test_tree_predictions_break_ties_as_argmax_does():
    forest = ForestArrays.from_nodes("classification", 1, [[dict(
        id=0, feature=-1, threshold=0.0, categories=None, left=-1, right=-1, stats=[0.0, 0.0, 0.0])]])
    stats = np.random.default_rng(0).integers(0, 3, (500, 7, 3)).astype(float)   # many ties, some all zero
    np.testing.assert_array_equal(forest.tree_predictions(np.zeros((500, 7), int), stats), np.argmax(stats, axis=2))


# ------------------------------------------------------------------------------ stationary guard
def test_on_a_stationary_stream_the_speed_rule_is_no_worse_than_the_champion_alone():
    from sklearn.datasets import make_classification

    X, y = make_classification(30_000, n_features=8, n_informative=5, flip_y=0.05, random_state=4)
    model = batch_model(X[:15_000], y[:15_000], trees=20, depth=10)
    speed, log, accuracy = replay(model, X, y, 15_000, ReplacementSettings())
    champion = RandomForestSpeedModel(ForestLearner(model))
    champion_accuracy = [1.0 - float(np.mean(champion.score_many(rows(X[a:a + 1000], y[a:a + 1000]))["error"]))
                         for a in range(15_000, 30_000, 1000)]
    assert np.mean(accuracy) >= np.mean(champion_accuracy) - 0.005, (np.mean(accuracy), np.mean(champion_accuracy))
    assert speed.learner.replacement.replaced <= 2, "trees were replaced on a stream without drift"
