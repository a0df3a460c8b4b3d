"""ForestArrays: numpy predictions equal Spark's for every row; leaf updates equal a direct computation."""
from __future__ import annotations

import numpy as np
import pytest

from batch_layer.random_forest import fit_encoding, spark_training_frame
from headwater.apps.forest import updates
from headwater.apps.forest.arrays import ForestArrays
from headwater.apps.forest.decay import Decay, fold_rows
from headwater.apps.forest.updates import LEAVES_PER_MESSAGE
from headwater.config import load_config
from headwater.input_format import InputSchema
from tests.forest_helpers import demo_frame, direct_leaf_update


def spark_forest(spark, config, tmp_path, **params):
    """(Spark model, its ForestArrays, feature matrix, labels, Spark's transform as pandas)."""
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.regression import RandomForestRegressor

    frame = demo_frame(spark, config)
    encoding = fit_encoding(frame, InputSchema.from_config(config))
    training = spark_training_frame(frame, encoding).cache()
    estimator = RandomForestClassifier if encoding.classes else RandomForestRegressor
    model = estimator(featuresCol="features", labelCol="label", seed=3, **params).fit(training)
    forest = ForestArrays.from_spark_model(model, tmp_path)
    scored = model.transform(training).toPandas()
    X = np.array([v.toArray() for v in scored["features"]])
    return model, forest, X, scored["label"].to_numpy(), scored


@pytest.fixture(scope="module")
def fitted(spark, tmp_path_factory):
    """One small Spark forest per app, fitted once for the module: (model, forest, X, y, scored)."""
    cache = {}

    def get(app: str):
        if app not in cache:
            params = {"numTrees": 12, "maxDepth": 5, "maxBins": 16}
            cache[app] = spark_forest(spark, load_config(f"conf/{app}.conf"), tmp_path_factory.mktemp(app), **params)
        model, forest, X, y, scored = cache[app]
        return model, forest.copy(), X, y, scored

    return get


def test_classification_predictions_equal_spark_for_every_row(fitted, tmp_path):
    _, forest, X, _, scored = fitted("rdf-classification")
    assert forest.num_trees == 12 and forest.task == "classification"
    np.testing.assert_array_equal(forest.predict(X), scored["prediction"].to_numpy())
    np.testing.assert_allclose(forest.predict_proba(X), np.stack([v.toArray() for v in scored["probability"]]),
                               atol=1e-12)


def test_regression_with_a_categorical_feature_equals_spark_for_every_row(fitted, tmp_path):
    model, forest, X, _, scored = fitted("rdf-regression")
    assert forest.category_mask.shape[1] > 0, "some split must use the categorical feature 'sex'"
    np.testing.assert_allclose(forest.predict(X), scored["prediction"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(forest.importances, model.featureImportances.toArray())


def test_save_and_load_keep_predictions_and_structure(fitted, tmp_path):
    _, forest, X, _, _ = fitted("rdf-regression")
    forest.save(tmp_path / "saved")
    loaded = ForestArrays.load(tmp_path / "saved")
    assert loaded.structure_id == forest.structure_id
    np.testing.assert_array_equal(loaded.predict(X), forest.predict(X))


@pytest.mark.parametrize("app", ["rdf-classification", "rdf-regression"])
def test_leaf_updates_equal_a_direct_computation(fitted, app):
    _, forest, X, y, _ = fitted(app)
    rows, labels = X[:120], y[:120]
    expected = direct_leaf_update(forest, rows, labels)
    nodes = fold_rows(forest, forest.leaves(rows), labels, np.ones(len(labels)), 1.0, Decay())
    np.testing.assert_allclose(forest.stats, expected)
    assert (forest.feature[nodes] < 0).all()


def test_leaf_update_payloads_are_idempotent_and_tied_to_the_forest(fitted, tmp_path):
    _, forest, X, y, _ = fitted("rdf-regression")
    follower = forest.copy()
    nodes = fold_rows(forest, forest.leaves(X[:50]), y[:50], np.ones(50), 1.0, Decay())
    forest.clock = 1.0
    changes = forest.leaf_update(nodes)
    for change in changes + changes:  # applied twice, as a replayed topic would
        assert follower.apply_leaf_update(change)
    np.testing.assert_array_equal(follower.stats, forest.stats)
    np.testing.assert_array_equal(follower.predict(X), forest.predict(X))
    other = ForestArrays.from_nodes("regression", X.shape[1], [[{
        "id": 0, "feature": -1, "threshold": 0.0, "categories": None, "left": -1, "right": -1, "stats": [1, 1, 1]}]])
    assert not other.apply_leaf_update(changes[0]), "an update built on another forest must be ignored"
    with pytest.raises(ValueError, match="not a leaf"):
        follower.apply_leaf_update(updates.decode(["L", follower.structure_id, 2.0,
                                                   [[0, follower.tree_sids[0], [0], [[1.0, 1.0, 1.0]]]]]))


def test_payloads_are_split_into_bounded_messages():
    leaves = [{"id": i, "feature": -1, "threshold": 0.0, "categories": None, "left": -1, "right": -1, "stats": [1, 0]}
              for i in range(LEAVES_PER_MESSAGE + 5)]
    forest = ForestArrays.from_nodes("classification", 1, [[leaf] for leaf in leaves])
    changes = forest.leaf_update(np.arange(len(leaves)))
    assert [sum(len(group[2]) for group in updates.encode(c)[3]) for c in changes] == [LEAVES_PER_MESSAGE, 5]


def test_category_beyond_every_left_set_goes_right():
    def leaf(value):
        return {"feature": -1, "threshold": 0.0, "categories": None, "left": -1, "right": -1,
                "stats": [1, value, value]}
    forest = ForestArrays.from_nodes("regression", 1, [[
        {"id": 0, "feature": 0, "threshold": 0.0, "categories": [0, 1], "left": 1, "right": 2, "stats": [2, 3, 5]},
        dict(id=1, **leaf(1.0)), dict(id=2, **leaf(2.0))]])
    np.testing.assert_array_equal(forest.predict(np.array([[0.0], [1.0], [2.0], [7.0]])), [1.0, 1.0, 2.0, 2.0])
