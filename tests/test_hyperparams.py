"""Hyperparameter values as Oryx reads them: scalars fixed, lists discrete, explicit ranges searched."""
import math

import pytest

from batch_layer.hyperparams import choose_combinations, first_value, trial_values, values_per_range
from headwater.config import ConfigError, load_config


def test_a_scalar_is_a_fixed_value():
    assert choose_combinations({"features": 10, "lambda": 0.01}, 3, "grid", 0) == [{"features": 10, "lambda": 0.01}]
    assert choose_combinations({"features": 10}, 3, "random", 0) == [{"features": 10}]


def test_grid_takes_oryx_trial_values_across_a_range():
    # Oryx's ContinuousRange / DiscreteRange: the middle for one value, the ends for two, even steps after
    assert trial_values({"min": 0.0, "max": 1.0}, 1) == [0.5]
    assert trial_values({"min": 0.0, "max": 1.0}, 3) == [0.0, 0.5, 1.0]
    assert trial_values({"min": 10, "max": 50}, 2) == [10, 50]
    assert trial_values({"min": 1, "max": 3}, 5) == [1, 2, 3]
    assert trial_values({"min": 0.001, "max": 0.1, "scale": "log"}, 3) == [0.001, 0.01, 0.1]
    # the fewest values per range that make enough combinations: 2 x 2 >= 4
    space = {"features": {"min": 10, "max": 50}, "lambda": {"min": 0.01, "max": 0.1}}
    assert values_per_range(space, 4) == 2
    combos = choose_combinations(space, 4, "grid", 0)
    assert sorted((c["features"], c["lambda"]) for c in combos) == [(10, 0.01), (10, 0.1), (50, 0.01), (50, 0.1)]
    # a one-value integer range cannot give more combinations: the search stops at what there is
    assert choose_combinations({"k": {"min": 5, "max": 5}, "f": [1, 2]}, 10, "grid", 0) == [{"k": 5, "f": 1},
                                                                                            {"k": 5, "f": 2}]


def test_random_samples_each_range_independently_within_it():
    combos = choose_combinations({"features": {"min": 10, "max": 50},
                                  "lambda": {"min": 0.001, "max": 0.1, "scale": "log"}}, 200, "random", seed=3)
    assert len(combos) == 200
    assert all(10 <= c["features"] <= 50 and isinstance(c["features"], int) for c in combos)
    logs = [math.log10(c["lambda"]) for c in combos]
    assert all(-3 <= v <= -1 for v in logs)
    # log-uniform: about half below the geometric middle 0.01 (a uniform draw would put ~9% there)
    assert 70 < sum(v < -2 for v in logs) < 130
    assert combos == choose_combinations({"features": {"min": 10, "max": 50},
                                          "lambda": {"min": 0.001, "max": 0.1, "scale": "log"}}, 200, "random", 3)


def test_search_names_are_case_insensitive_and_first_value_is_the_one_candidate():
    assert choose_combinations({"k": [3, 4]}, 1, "GRID", 0) == [{"k": 3}]
    assert (first_value([2.0, 5.0]), first_value(7), first_value({"min": 1.0, "max": 3.0})) == (2.0, 7, 2.0)
    with pytest.raises(ValueError, match="search must be one of"):
        choose_combinations({"k": [3]}, 1, "bayes", 0)


def _als(*overrides):
    return load_config(overrides=["headwater.id=t", "headwater.app=als", *overrides])


def test_config_accepts_scalars_lists_and_ranges_and_names_a_bad_range():
    assert _als("headwater.als.hyperparams.features=10").get("headwater.als.hyperparams.features") == 10
    assert _als("als.hyperparams.lambda={min=0.001, max=0.1, scale=log}").get("headwater.als.hyperparams.lambda") \
        == {"min": 0.001, "max": 0.1, "scale": "log"}
    for bad, why in (("{min=0, max=0.1, scale=log}", "above 0 on a log scale"), ("{min=2, max=1}", "at most its max"),
                     ("{min=1}", "keys min, max"), ("{min=1, max=2, scale=cubic}", "'linear' or 'log'")):
        with pytest.raises(ConfigError, match=f"headwater.als.hyperparams.lambda must be a range.*{why}"):
            _als(f"als.hyperparams.lambda={bad}")
    with pytest.raises(ConfigError, match="headwater.als.hyperparams.features must be an int"):
        _als("als.hyperparams.features=2.5")


def test_batch_spaces_take_a_scalar(make_config):
    from batch_layer.als import ALSUpdate

    config = make_config(**{"als.hyperparams.features": 10, "als.hyperparams.lambda": 0.1,
                            "als.implicit": False, "als.hyperparams.bias-lambda": 3.0})
    update = ALSUpdate(config)
    assert choose_combinations(update.hyperparameter_space(), 1, "grid", 0) == [
        {"features": 10, "lambda": 0.1, "bias-lambda": 3.0}]
