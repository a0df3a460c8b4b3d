"""Shared by the random-forest tests: demo data as parsed rows and configs that point at the demo schemas."""
from __future__ import annotations

import numpy as np

from headwater.categorical_encoding import CategoricalEncoding
from headwater.config import load_config
from headwater.demos.forest import history_lines
from headwater.forest_arrays import ForestArrays
from headwater.forest_model import ForestModel
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


# --- a small random forest without Spark, for the speed and serving tests ------------------------------

COLOURS = ["blue", "green", "red"]
CLASSES = ["no", "yes"]
PREDICTORS = ["x0", "x1", "x2", "colour"]


def small_schema(task: str) -> dict:
    """make_config overrides: an id column, three numeric predictors, a categorical one, the target."""
    return {"input-schema.feature-names": ["id", *PREDICTORS, "label"], "input-schema.id-features": ["id"],
            "input-schema.categorical-features": ["colour", "label"] if task == "classification" else ["colour"],
            "input-schema.target-feature": "label"}


def random_forest_model(task: str, seed: int = 0, trees: int = 8, depth: int = 4) -> ForestModel:
    """Random splits over PREDICTORS (colour split by category sets) and random leaf statistics."""
    rng = np.random.default_rng(seed)

    def grow(nodes: list, level: int) -> int:
        node_id = len(nodes)
        nodes.append(None)
        if level == depth or (level > 1 and rng.random() < 0.2):
            if task == "classification":
                stats = rng.integers(0, 20, 2).astype(float) + [1, 0]
            else:
                values = rng.normal(50, 10, rng.integers(1, 10))
                stats = [len(values), values.sum(), (values ** 2).sum()]
            nodes[node_id] = {"id": node_id, "feature": -1, "threshold": 0.0, "categories": None,
                              "left": -1, "right": -1, "stats": list(stats)}
            return node_id
        feature = int(rng.integers(0, len(PREDICTORS)))
        categories = sorted(rng.choice(3, int(rng.integers(1, 3)), replace=False).tolist()) if feature == 3 else None
        left, right = grow(nodes, level + 1), grow(nodes, level + 1)
        nodes[node_id] = {"id": node_id, "feature": feature, "threshold": float(rng.uniform(-1, 1)),
                          "categories": categories, "left": left, "right": right,
                          "stats": [0.0] * (2 if task == "classification" else 3)}
        return node_id

    forest_trees = []
    for _ in range(trees):
        nodes: list = []
        grow(nodes, 0)
        forest_trees.append(nodes)
    importances = rng.dirichlet(np.ones(len(PREDICTORS)))
    forest = ForestArrays.from_nodes(task, len(PREDICTORS), forest_trees, importances)
    categories = {"colour": COLOURS, **({"label": CLASSES} if task == "classification" else {})}
    return ForestModel(forest, CategoricalEncoding(PREDICTORS, categories, target="label"))


def small_lines(task: str, count: int, seed: int = 1, labelled: bool = True) -> list[str]:
    rng = np.random.default_rng(seed)
    lines = []
    for n in range(count):
        x = rng.uniform(-1.5, 1.5, 3)
        label = CLASSES[int(rng.integers(0, 2))] if task == "classification" else repr(float(rng.normal(50, 20)))
        lines.append(",".join([f"r{n}", *map(repr, x.tolist()), COLOURS[int(rng.integers(0, 3))],
                               label if labelled else ""]))
    return lines


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
