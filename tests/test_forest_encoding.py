"""CategoricalEncoding: stable codes, unknown values named, the same codes after a save and load."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from headwater.apps.forest.encoding import CategoricalEncoding, UnknownCategory

ROWS = pa.table({"size": [1.0, 2.0, 3.0, 4.0], "colour": ["red", "blue", "red", "green"],
                 "label": ["yes", "no", "no", "yes"]})


def fitted() -> CategoricalEncoding:
    return CategoricalEncoding.fit(["size", "colour"], ["colour", "label"], ROWS, target="label")


def test_codes_are_positions_in_sorted_distinct_values():
    encoding = fitted()
    assert encoding.categories == {"colour": ["blue", "green", "red"], "label": ["no", "yes"]}
    assert encoding.classes == ["no", "yes"] and encoding.categorical_predictors == {1: 3}
    np.testing.assert_array_equal(encoding.features(ROWS), [[1, 2], [2, 0], [3, 2], [4, 1]])
    np.testing.assert_array_equal(encoding.target(ROWS), [1, 0, 0, 1])
    assert encoding.decode("colour", [2, 0]) == ["red", "blue"]
    # fitting on the same values in another order gives the same codes
    shuffled = ROWS.take([3, 1, 0, 2])
    assert CategoricalEncoding.fit(["size", "colour"], ["colour", "label"], shuffled, "label").categories == \
        encoding.categories


def test_unknown_category_names_feature_value_and_row():
    rows = pa.table({"size": [1.0, 2.0], "colour": ["red", "purple"]})
    with pytest.raises(UnknownCategory) as caught:
        fitted().features(rows)
    assert (caught.value.feature, caught.value.value, caught.value.row) == ("colour", "purple", 1)
    assert "feature 'colour' has no category 'purple' (known: blue, green, red)" in str(caught.value)


def test_a_missing_number_is_not_reported_as_a_category():
    with pytest.raises(ValueError, match="feature 'size' is missing or not a number in row 0"):
        fitted().features(pa.table({"size": pa.array([None], pa.float64()), "colour": ["red"]}))
    with pytest.raises(KeyError, match="colour"):
        fitted().features(pa.table({"size": [1.0]}))


def test_known_rows_leave_out_unknown_categories_and_classes():
    rows = pa.table({"size": [1.0, 2.0, 3.0], "colour": ["red", "teal", "blue"], "label": ["yes", "no", "maybe"]})
    X, y, known = fitted().known_rows(rows)
    assert known.tolist() == [True, False, False]
    np.testing.assert_array_equal(X, [[1.0, 2.0]])
    np.testing.assert_array_equal(y, [1.0])


def test_numeric_target_and_round_trip(tmp_path):
    encoding = CategoricalEncoding(["colour"], {"colour": ["a", "b"]}, target="price")
    assert encoding.classes is None
    np.testing.assert_array_equal(encoding.target(pa.table({"price": [2.5]})), [2.5])
    encoding.save(tmp_path)
    loaded = CategoricalEncoding.load(tmp_path)
    assert loaded.to_json() == encoding.to_json()
    np.testing.assert_array_equal(loaded.codes("colour", ["b", "a", "z"]), [1.0, 0.0, np.nan])


def test_categories_for_a_feature_that_is_not_used_are_an_error():
    with pytest.raises(ValueError, match="neither predictors nor the target"):
        CategoricalEncoding(["x"], {"y": ["a"]})
