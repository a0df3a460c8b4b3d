"""Choosing hyperparameter combinations to try (Oryx's HyperParams, GridSearch and RandomSearch).

An app describes its search space as ``{name: values}`` from its config, where each hyperparameter is

- a scalar: fixed, as in Oryx (``headwater.als.hyperparams.features = 10``);
- a list: discrete values to try (``features = [10, 50]``; Oryx would read a two-number list as a range);
- a range ``{min, max}``, optionally ``scale = log`` (``lambda = {min = 0.001, max = 0.1, scale = log}``):
  integers when both bounds are integers.

``headwater.ml.eval.search`` (Oryx's ``hyperparam-search``) picks how at most ``headwater.ml.eval.candidates``
combinations are chosen:

- ``grid``: each range gives trial values evenly across it (geometrically on a log scale), as many as
  Oryx's grid search takes (the fewest per range that make enough combinations); then every combination
  when the candidates allow, else ones spread evenly through the grid;
- ``random``: with a range, each combination samples every hyperparameter independently (uniformly, or
  log-uniformly), as Oryx's random search; without one, a sample of distinct grid combinations.
  Both draw with ``headwater.ml.eval.seed``.

The grid is never materialised, so a large space costs nothing until a combination is chosen.

>>> space = {"features": [10, 50], "lambda": [0.01, 0.1]}
>>> choose_combinations(space, 4, "grid", seed=0)  # doctest: +NORMALIZE_WHITESPACE
[{'features': 10, 'lambda': 0.01}, {'features': 10, 'lambda': 0.1},
 {'features': 50, 'lambda': 0.01}, {'features': 50, 'lambda': 0.1}]
>>> choose_combinations(space, 2, "grid", seed=0)
[{'features': 10, 'lambda': 0.01}, {'features': 50, 'lambda': 0.01}]
>>> len(choose_combinations(space, 10, "random", seed=0))
4
>>> choose_combinations({"features": 10, "lambda": {"min": 0.001, "max": 0.1, "scale": "log"}}, 3, "grid", 0)
[{'features': 10, 'lambda': 0.001}, {'features': 10, 'lambda': 0.01}, {'features': 10, 'lambda': 0.1}]
"""
from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from headwater.constraints import option_name

SEARCHES = ("grid", "random")


def _is_range(spec: Any) -> bool:
    return isinstance(spec, Mapping)


def _is_int_range(spec: Mapping) -> bool:
    return all(isinstance(spec[b], int) and not isinstance(spec[b], bool) for b in ("min", "max"))


def distinct_values(spec: Any) -> float:
    """How many different values ``spec`` can give (inf for a range of floats)."""
    if isinstance(spec, list):
        return len(spec)
    if not _is_range(spec) or spec["min"] == spec["max"]:
        return 1
    return spec["max"] - spec["min"] + 1 if _is_int_range(spec) else math.inf


def trial_values(spec: Any, count: int) -> list:
    """The values grid search tries: a scalar itself, a list all of it, a range ``count`` values across it
    (Oryx's ``getTrialValues``: the middle for one, the ends for two)."""
    if isinstance(spec, list):
        return list(spec)
    if not _is_range(spec):
        return [spec]
    low, high, log = spec["min"], spec["max"], spec.get("scale") == "log"
    if low == high:
        return [low]
    to_line, from_line = (math.log, math.exp) if log else (float, float)
    a, b = to_line(low), to_line(high)
    if count == 1:
        values = [from_line((a + b) / 2)]
    else:  # the ends exactly, the points between evenly on the (log) line
        values = [low, *(from_line(a + (b - a) * n / (count - 1)) for n in range(1, count - 1)), high]
    if _is_int_range(spec):
        return sorted({int(round(v)) for v in values})
    return [round(v, 12) for v in values]


def random_value(spec: Any, rng: random.Random) -> Any:
    """One value drawn from ``spec``: a list's item, or uniform (log-uniform) across a range."""
    if isinstance(spec, list):
        return rng.choice(spec)
    if not _is_range(spec):
        return spec
    low, high = spec["min"], spec["max"]
    if spec.get("scale") == "log":
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
        return min(high, max(low, int(round(value)))) if _is_int_range(spec) else value
    return rng.randint(low, high) if _is_int_range(spec) else rng.uniform(low, high)


def first_value(spec: Any) -> Any:
    """The value one grid candidate would use (a list's first value, a range's middle)."""
    return trial_values(spec, 1)[0]


def values_per_range(space: Mapping[str, Any], how_many: int) -> int:
    """Oryx's rule: the fewest trial values per range that give at least ``how_many`` combinations
    (stopping when more values per range would not give more combinations)."""
    fixed = math.prod(distinct_values(s) for s in space.values() if not _is_range(s))
    ranges = [distinct_values(s) for s in space.values() if _is_range(s)]
    per, total = 0, 0
    while True:
        per, last = per + 1, total
        total = fixed * math.prod(min(per, d) for d in ranges)
        if total >= how_many or total <= last:
            return per


def grid_size(space: Mapping[str, list]) -> int:
    return math.prod(len(values) for values in space.values())


def combination(space: Mapping[str, list], index: int) -> dict[str, Any]:
    """The ``index``-th combination of the grid, the last hyperparameter varying fastest."""
    chosen = {}
    for name, values in reversed(list(space.items())):
        index, position = divmod(index, len(values))
        chosen[name] = values[position]
    return {name: chosen[name] for name in space}


def choose_combinations(space: Mapping[str, Any], how_many: int, search: str, seed: int) -> list[dict[str, Any]]:
    """At most ``how_many`` combinations; a single empty one when there is nothing to tune."""
    search = option_name(search)
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    empty = [name for name, values in space.items() if isinstance(values, list) and not values]
    if empty:
        raise ValueError(f"hyperparameter {empty[0]!r} has no values to try")
    rng = random.Random(seed)
    if search == "random" and any(_is_range(s) for s in space.values()):
        return [{name: random_value(spec, rng) for name, spec in space.items()} for _ in range(how_many)]
    per_range = values_per_range(space, how_many)
    grid = {name: trial_values(spec, per_range) for name, spec in space.items()}
    total = grid_size(grid)
    count = min(how_many, total)
    if search == "grid":
        indices = sorted({(n * total) // count for n in range(count)})
    else:
        indices = rng.sample(range(total), count)
    return [combination(grid, index) for index in indices]
