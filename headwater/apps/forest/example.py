"""A small random forest without Spark, and rows for it: the shared contract checks' example and tests' fixture.

>>> classification_example().state  # doctest: +ELLIPSIS
ForestModel(classification, trees=8, nodes=..., predictors=4, structure=...)
"""
from __future__ import annotations

import numpy as np

from headwater.api import AppExample
from headwater.apps.forest.arrays import ForestArrays
from headwater.apps.forest.encoding import CategoricalEncoding
from headwater.apps.forest.model import ForestModel

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


def classification_example() -> AppExample:
    return AppExample(small_schema("classification"), random_forest_model("classification"),
                      small_lines("classification", 40))


def regression_example() -> AppExample:
    return AppExample(small_schema("regression"), random_forest_model("regression"), small_lines("regression", 40))
