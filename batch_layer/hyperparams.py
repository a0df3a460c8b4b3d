"""Choosing hyperparameter combinations to try (Oryx's HyperParams, GridSearch and RandomSearch).

An app describes its search space as ``{name: [values to try]}`` (from config lists such as
``headwater.als.hyperparams.features = [10, 50]``). ``headwater.ml.eval.search`` picks how at most
``headwater.ml.eval.candidates`` combinations are chosen from the grid of all combinations:

- ``grid``: every combination when the candidates allow, else ones spread evenly through the grid;
- ``random``: a random sample of distinct combinations, drawn with ``headwater.ml.eval.seed``.

The grid is never materialised, so a large space costs nothing until a combination is chosen.

>>> space = {"features": [10, 50], "lambda": [0.01, 0.1]}
>>> choose_combinations(space, 4, "grid", seed=0)  # doctest: +NORMALIZE_WHITESPACE
[{'features': 10, 'lambda': 0.01}, {'features': 10, 'lambda': 0.1},
 {'features': 50, 'lambda': 0.01}, {'features': 50, 'lambda': 0.1}]
>>> choose_combinations(space, 2, "grid", seed=0)
[{'features': 10, 'lambda': 0.01}, {'features': 50, 'lambda': 0.01}]
>>> len(choose_combinations(space, 10, "random", seed=0))
4
"""
from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

SEARCHES = ("grid", "random")


def grid_size(space: Mapping[str, list]) -> int:
    return math.prod(len(values) for values in space.values())


def combination(space: Mapping[str, list], index: int) -> dict[str, Any]:
    """The ``index``-th combination of the grid, the last hyperparameter varying fastest."""
    chosen = {}
    for name, values in reversed(list(space.items())):
        index, position = divmod(index, len(values))
        chosen[name] = values[position]
    return {name: chosen[name] for name in space}


def choose_combinations(space: Mapping[str, list], how_many: int, search: str, seed: int) -> list[dict[str, Any]]:
    """At most ``how_many`` distinct combinations; a single empty one when there is nothing to tune."""
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    empty = [name for name, values in space.items() if not values]
    if empty:
        raise ValueError(f"hyperparameter {empty[0]!r} has no values to try")
    total = grid_size(space)
    count = min(how_many, total)
    if search == "grid":
        indices = sorted({(n * total) // count for n in range(count)})
    else:
        indices = random.Random(seed).sample(range(total), count)
    return [combination(space, index) for index in indices]
