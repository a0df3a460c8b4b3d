"""RandomForestSpeedModel: leaf updates against a direct computation, UP payloads replayed in serving, snapshots."""
from __future__ import annotations

import numpy as np
import pytest

from headwater.apps.forest.example import PREDICTORS, random_forest_model, small_lines, small_schema
from headwater.apps.forest.learning import ForestLearner
from headwater.input_format import InputSchema, SchemaCSVFormat
from headwater.messages import decode_update, encode_up
from headwater.registry import RegisteredModel
from serving_layer.random_forest import RandomForestServingModel
from speed_layer.random_forest import RandomForestSpeedModel
from tests.forest_helpers import direct_leaf_update


def speed_model(model) -> RandomForestSpeedModel:
    """The speed rule without forgetting or replacement: leaf counts a direct computation can check."""
    return RandomForestSpeedModel(ForestLearner(model))


def parser(task: str) -> SchemaCSVFormat:
    schema = small_schema(task)
    return SchemaCSVFormat(InputSchema(schema["input-schema.feature-names"], ids=["id"],
                                       categorical=schema["input-schema.categorical-features"], target="label"))


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_micro_batches_update_leaves_as_a_direct_computation(task):
    speed = speed_model(random_forest_model(task))
    expected = speed.model.forest.stats.copy()
    for batch in range(3):
        table = parser(task).parse(small_lines(task, 40, seed=batch)).table
        X, y, _ = speed.model.encoding.known_rows(table)
        forest_before = speed.model.forest.copy()
        forest_before.stats = expected
        expected = direct_leaf_update(forest_before, X, y)
        payloads = speed.learn_many(table)
        np.testing.assert_allclose(speed.model.forest.stats, expected)
        forest = speed.model.forest
        changed = sorted(forest.offsets[tree] + node for payload in payloads for tree, _, nodes, _ in payload[3]
                         for node in nodes)
        assert changed == sorted(np.flatnonzero((expected != forest_before.stats).any(axis=1)).tolist())


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_payloads_reproduce_the_speed_model_in_serving_even_when_applied_twice(task):
    speed = speed_model(random_forest_model(task, seed=4))
    serving = RandomForestServingModel(random_forest_model(task, seed=4), version=1)
    for batch in range(3):
        payloads = speed.learn_many(parser(task).parse(small_lines(task, 30, seed=10 + batch)).table)
        for raw in [encode_up(p) for p in payloads] * 2:  # through the wire format, replayed
            serving.apply_update(decode_update(raw).payload)
    np.testing.assert_array_equal(serving.model.forest.stats, speed.model.forest.stats)
    rows = parser(task).parse(small_lines(task, 50, seed=99)).table
    assert serving.model.predict(rows) == speed.model.predict(rows)


def test_streamed_examples_change_predictions():
    speed = speed_model(random_forest_model("classification", seed=2))
    line = small_lines("classification", 1, seed=3)[0]
    row = parser("classification").parse([line]).table
    before = speed.model.predict(row)[0]
    flipped = line.rsplit(",", 1)[0] + "," + ("no" if before == "yes" else "yes")
    speed.learn_many(parser("classification").parse([flipped] * 200).table)
    assert speed.model.predict(row)[0] != before


def test_rows_with_unknown_categories_or_classes_are_skipped():
    speed = speed_model(random_forest_model("classification"))
    before = speed.model.forest.stats.copy()
    lines = ["a,0.1,0.2,0.3,purple,yes", "b,0.1,0.2,0.3,red,maybe"]
    assert speed.learn_many(parser("classification").parse(lines).table) == []
    np.testing.assert_array_equal(speed.model.forest.stats, before)
    assert speed.learn_many(parser("classification").parse([]).table) == []


def test_payloads_from_another_forest_are_ignored():
    speed = speed_model(random_forest_model("regression", seed=1))
    other = speed_model(random_forest_model("regression", seed=2))
    payloads = other.learn_many(parser("regression").parse(small_lines("regression", 20)).table)
    before = speed.model.forest.stats.copy()
    for payload in payloads:
        speed.apply_update(payload)
    np.testing.assert_array_equal(speed.model.forest.stats, before)


def test_snapshot_artifacts_round_trip(make_config, tmp_path):
    speed = speed_model(random_forest_model("regression"))
    speed.learn_many(parser("regression").parse(small_lines("regression", 20)).table)
    copy = speed.copy()
    speed.learn_many(parser("regression").parse(small_lines("regression", 20, seed=7)).table)
    assert not np.array_equal(copy.model.forest.stats, speed.model.forest.stats)  # the copy is independent
    copy.save(tmp_path)
    config = make_config(app="rdf-regression", **small_schema("regression"))
    loaded = RandomForestSpeedModel.from_registered(RegisteredModel("m", 3, tmp_path), config)
    np.testing.assert_array_equal(loaded.model.forest.stats, copy.model.forest.stats)
    assert loaded.model.encoding.predictors == PREDICTORS
    assert loaded.model.forest.structure_id == speed.model.forest.structure_id
    assert RandomForestServingModel.from_registered(RegisteredModel("m", 3, tmp_path)).version == 3


def test_event_time_decay_needs_the_time_feature(make_config, tmp_path):
    from headwater.constraints import ConfigError

    random_forest_model("regression").save(tmp_path)
    config = make_config(app="rdf-regression", **small_schema("regression"), **{"rdf.time-unit": "event-time"})
    with pytest.raises(ConfigError, match="headwater.rdf.time-feature"):
        RandomForestSpeedModel.from_registered(RegisteredModel("m", 1, tmp_path), config)
