"""Oryx's key names, strategy spellings and evaluation settings are accepted (issue 11, points 2 and 10)."""
import pytest

from headwater.config import ConfigError, load_config


def _load(app, *overrides):
    return load_config(overrides=["headwater.id=t", f"headwater.app={app}", *overrides])


def test_the_issue_s_four_overrides_are_accepted():
    assert _load("kmeans", "headwater.kmeans.evaluation-strategy=dunn").get("headwater.kmeans.evaluation-strategy") \
        == "dunn"
    als = _load("als", "headwater.als.hyperparams.features=10", "headwater.ml.eval.test-fraction=0",
                "headwater.als.no-known-items=true")
    assert (als.get("headwater.als.hyperparams.features"), als.get("headwater.ml.eval.test-fraction"),
            als.get("headwater.als.no-known-items")) == (10, 0, True)


def test_test_fraction_one_is_refused():
    with pytest.raises(ConfigError, match=r"headwater.ml.eval.test-fraction must be a number in the range \[0, 1\)"):
        _load("als", "headwater.ml.eval.test-fraction=1")


def test_strategy_names_are_case_insensitive():
    for name in ("DUNN", "Silhouette", "DAVIES_BOULDIN", "sse"):
        _load("kmeans", f"kmeans.evaluation-strategy={name}")
    _load("kmeans", "kmeans.initialization-strategy=RANDOM")
    assert _load("als", "ml.eval.search=GRID").get("headwater.ml.eval.search") == "GRID"
    with pytest.raises(ConfigError, match="evaluation-strategy must be one of"):
        _load("kmeans", "kmeans.evaluation-strategy=calinski")


def test_oryx_key_names_are_read_as_headwater_s(tmp_path):
    conf = tmp_path / "oryx-names.conf"
    conf.write_text('headwater { id = t, app = als, als.logStrength = true, ml.eval.hyperparam-search = "grid",\n'
                    '  als.rescorer-provider-class = "my.module:Provider", serving.api.port = 8081 }\n')
    config = load_config(conf)
    assert (config.get("headwater.als.log-strength"), config.get("headwater.ml.eval.search"),
            config.get("headwater.serving.rescorer"), config.get("headwater.serving.port")) == (
        True, "grid", "my.module:Provider", 8081)
    both = tmp_path / "both.conf"
    both.write_text('headwater { id = t, app = als, ml.eval.hyperparam-search = grid, ml.eval.search = random }\n')
    with pytest.raises(ConfigError, match="hyperparam-search and headwater.ml.eval.search name the same setting"):
        load_config(both)
    # the alias and headwater's own key in different layers: the later layer wins as usual
    assert load_config(conf, ["headwater.ml.eval.search=random"]).get("headwater.ml.eval.search") == "random"


def test_oryx_only_keys_say_why_headwater_has_none():
    """Point 9: min-model-load-fraction is unnecessary with an atomic swap, and the error says so."""
    with pytest.raises(ConfigError, match="min-model-load-fraction .* is Oryx's .* swaps in a whole loaded model"):
        _load("als", "headwater.serving.min-model-load-fraction=0.8")
