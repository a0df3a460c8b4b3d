"""Promotion order and failures (with the ML template's fake app): tag, then alias, then notice; a failure at
any step leaves the old champion; a champion that cannot be evaluated blocks promotion."""
from __future__ import annotations

from mlflow import MlflowClient

from batch_layer.ml_update import MLUpdate
from headwater import registry
from tests.test_ml_update import FakeApp, Quality


def fake_config(make_config):
    # without the refit, the champion is the model a test registered (a refit champion is not compared)
    return make_config(app="tests.test_ml_update:FAKE", **{"ml.eval.refit": False})


def run(config, spark, qualities, publish=None, before_promotion=None, app=None):
    return MLUpdate(app or FakeApp(config, qualities), config, publish, before_promotion).run(spark.range(10), 4)


def test_the_tag_comes_before_the_alias_and_the_alias_before_the_notice(make_config, spark):
    config = fake_config(make_config)
    first = run(config, spark, [0.5])
    seen = []

    def tag(version):
        seen.append(("tag", version, registry.get_alias_version(config, registry.CHAMPION)))
        registry.set_version_tag(config, version, registry.TAG_UPDATE_OFFSET, "7")

    def publish(notice):
        champion = registry.download_alias(config, registry.CHAMPION)
        seen.append(("notice", notice.version, champion.version, champion.tags.get(registry.TAG_UPDATE_OFFSET)))

    second = run(config, spark, [0.6], publish, tag)
    new = second.registered.version
    assert seen == [("tag", new, first.registered.version), ("notice", new, new, "7")]


def test_a_failed_notice_puts_the_alias_back_and_is_recorded(make_config, mlflow_uri, spark):
    config = fake_config(make_config)
    first = run(config, spark, [0.5])

    def broken_publish(notice):
        raise ConnectionError("broker away")

    second = run(config, spark, [0.7], broken_publish)
    assert not second.promoted and "promotion failed, champion version 1 stays" in second.reason
    assert registry.get_alias_version(config, registry.CHAMPION) == first.registered.version
    tags = MlflowClient(tracking_uri=mlflow_uri).get_run(second.run_id).data.tags
    assert tags["promoted"] == "false" and "ConnectionError: broker away" in tags["reason"]

    def broken_tag(version):
        raise TimeoutError("no end offsets")

    third = run(config, spark, [0.8], lambda notice: None, broken_tag)
    assert not third.promoted and "TimeoutError: no end offsets" in third.reason
    assert registry.get_alias_version(config, registry.CHAMPION) == first.registered.version


def test_the_first_champion_is_unset_again_when_its_notice_fails(make_config, spark):
    config = fake_config(make_config)

    def broken_publish(notice):
        raise ConnectionError("broker away")

    result = run(config, spark, [0.5], broken_publish)
    assert not result.promoted and registry.get_alias_version(config, registry.CHAMPION) is None


class CannotEvaluateTheChampion(FakeApp):
    def evaluate(self, model, split):
        if float(model) == 0.5:
            raise ValueError("the champion's artifacts are unreadable")
        return super().evaluate(model, split)


def test_a_champion_that_cannot_be_evaluated_blocks_promotion(make_config, spark):
    config = fake_config(make_config)
    run(config, spark, [0.5])
    result = run(config, spark, [0.9], app=CannotEvaluateTheChampion(config, [0.9]))
    assert not result.promoted
    assert result.reason.startswith("not compared with the champion, so not promoted")
    assert "the champion's artifacts are unreadable" in result.reason
    assert registry.get_alias_version(config, registry.CHAMPION) == 1
    assert Quality.load(registry.download_alias(config, registry.CHAMPION).path) == 0.5
