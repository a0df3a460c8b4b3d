"""Shared by the random-forest tests: demo data as parsed rows and configs that point at the demo schemas."""
from __future__ import annotations

import numpy as np

from headwater.apps.forest.arrays import ForestArrays
from headwater.apps.forest.demo import history_lines
from headwater.config import load_config
from headwater.input_format import InputSchema, SchemaCSVFormat


def demo_config(make_config, app: str, **overrides):
    """``make_config`` (fresh id, test broker and store) with the input schema of ``conf/<app>.conf``."""
    schema = load_config(f"conf/{app}.conf").section("headwater.input-schema")
    settings = {f"input-schema.{key}": value for key, value in schema.items()}
    settings.update(overrides)
    return make_config(app=app, **settings)


def demo_rows(config):
    """The demo data set of ``config``'s app, parsed by the app's input format (a pyarrow table)."""
    parsed = SchemaCSVFormat(InputSchema.from_config(config)).parse(history_lines(config.get("headwater.app")))
    assert not parsed.rejected
    return parsed.table.drop_columns(["line_index"])


def demo_frame(spark, config):
    return spark.createDataFrame(demo_rows(config).to_pandas())


def walk(forest: ForestArrays, row: np.ndarray, tree: int) -> int:
    """The leaf ``row`` reaches in ``tree``, one node at a time (the reference for the vectorised walk)."""
    node = forest.roots[tree]
    while forest.feature[node] >= 0:
        value = row[forest.feature[node]]
        if forest.category_mask.shape[1] and forest.category_mask[node].any():
            left = value < forest.category_mask.shape[1] and forest.category_mask[node, int(value)]
        else:
            left = value <= forest.threshold[node]
        node = forest.left[node] if left else forest.right[node]
    return node


def direct_leaf_update(forest: ForestArrays, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The statistics after adding rows (X, y) to their leaves, one row and one tree at a time."""
    stats = forest.stats.copy()
    for row, label in zip(X, y):
        for tree in range(forest.num_trees):
            leaf = walk(forest, row, tree)
            if forest.task == "classification":
                stats[leaf, int(label)] += 1
            else:
                stats[leaf] += [1.0, label, label * label]
    return stats
