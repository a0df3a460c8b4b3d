"""The ML template with a fake app (as Oryx tests its framework): search, nested runs, gate, register, notify."""
from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
from mlflow import MlflowClient

from batch_layer.ml_update import MLUpdate
from headwater import registry
from headwater.api import App, BatchApp


class EchoModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


class Quality(float):
    """The fake app's model state: a number saved in a text file."""

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "quality.txt").write_text(str(float(self)))

    @classmethod
    def load(cls, directory: Path) -> Quality:
        return cls((Path(directory) / "quality.txt").read_text())


# only the batch side is used here; the other layers' names are never resolved
FAKE = App(name="fake", package="tests", config_section="headwater.fake", input_format="-:-",
           state="tests.test_ml_update:Quality", pyfunc="tests.test_ml_update:EchoModel",
           batch="tests.test_ml_update:FakeApp", speed="-:-", serving_model="-:-", serving_routes="-:-")


class FakeApp(BatchApp):
    """A "model" is its hyperparameter ``quality``, which is also its score; negative ones fail to build.

    Trained on all the data (the refit), a model's quality is marked by +1000, so a test can tell which
    one was registered; the baseline scores ``baseline``."""

    def __init__(self, config, qualities, baseline=None):
        super().__init__(config)
        self.qualities = qualities
        self.baseline_quality = baseline

    def hyperparameter_space(self):
        return {"quality": self.qualities}

    def split(self, data):
        return data.where("id % 2 = 0"), data.where("id % 2 = 1")

    def build_model(self, split, hyperparams):
        if hyperparams["quality"] < 0:
            raise RuntimeError("cannot build this one")
        refit = split.train.count() == split.data.count()
        return Quality(hyperparams["quality"] + (1000 if refit else 0))

    def evaluate(self, model, split):
        return {"score": float(model), "test_rows": float(split.test.count())}

    def baseline(self, split):
        return None if self.baseline_quality is None else Quality(self.baseline_quality)


def generation(config, spark, qualities, baseline=None):
    notices = []
    app = FakeApp(config, qualities, baseline)
    result = MLUpdate(app, config, notices.append).run(spark.range(10), delta_version=4)
    return result, notices


def test_best_candidate_is_promoted_then_the_gate_holds_regressions(make_config, mlflow_uri, spark):
    config = make_config(app="tests.test_ml_update:FAKE", **{"ml.eval.candidates": 5, "ml.eval.parallelism": 2,
                                                             "ml.eval.search": "grid", "ml.eval.refit": False})
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)

    first, notices = generation(config, spark, [0.5, 0.9, -1.0])
    assert first.promoted and first.best.hyperparams == {"quality": 0.9}
    assert [(n.version, n.delta_version) for n in notices] == [(1, 4)]
    children = client.search_runs([registry.experiment_id(config)],
                                  filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'")
    assert sorted(run.info.status for run in children) == ["FAILED", "FINISHED", "FINISHED"]
    failed = next(run for run in children if run.info.status == "FAILED")
    assert "cannot build this one" in failed.data.tags["error"]
    version = client.get_model_version(config.app_id, "1")
    assert version.tags["layer"] == "batch" and version.tags["delta_version"] == "4"
    assert version.tags["train_rows"] == "5" and version.tags["score"] == "0.9"

    # 0.85 is worse than the champion's 0.9 by more than max-regression (0.02): kept out.
    second, notices = generation(config, spark, [0.85])
    assert not second.promoted and "worse than the champion" in second.reason
    assert (second.champion_version, second.champion_metrics["score"]) == (1, 0.9)
    assert notices == [] and registry.get_alias_version(config, "champion") == 1
    assert client.get_run(second.run_id).data.tags["promoted"] == "false"
    assert second.registered.version == 2

    # within max-regression: promoted
    third, notices = generation(config, spark, [0.89])
    assert third.promoted and registry.get_alias_version(config, "champion") == 3 and len(notices) == 1


def test_no_model_at_all_is_recorded_not_promoted(make_config, mlflow_uri, spark):
    config = make_config(app="tests.test_ml_update:FAKE")
    result, notices = generation(config, spark, [-1.0])
    assert not result.promoted and result.registered is None and notices == []
    assert result.reason == "no candidate could be built and evaluated"
    tags = MlflowClient(tracking_uri=mlflow_uri).get_run(result.run_id).data.tags
    assert (tags["promoted"], tags["reason"]) == ("false", result.reason)


def test_the_chosen_hyperparameters_are_refit_on_all_the_data_and_metrics_stay_held_out(make_config, mlflow_uri,
                                                                                        spark):
    config = make_config(app="tests.test_ml_update:FAKE", **{"ml.eval.candidates": 2, "ml.eval.search": "grid"})
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    first, _ = generation(config, spark, [0.5, 0.9])
    assert first.promoted and first.best.hyperparams == {"quality": 0.9}
    version = client.get_model_version(config.app_id, "1")
    assert version.tags["refit"] == "true" and version.tags["score"] == "0.9"  # the held-out score
    assert Quality.load(registry.download_alias(config, "champion").path) == 1000.9  # the refit model
    run = client.get_run(first.run_id).data
    assert run.metrics["best_score"] == 0.9 and run.metrics["refit_rows"] == 10
    # the refit champion has seen this test split: its score (1000.9) is logged, not held against 0.5
    second, _ = generation(config, spark, [0.5])
    assert second.promoted and "logged, not compared" in second.reason
    assert client.get_run(second.run_id).data.metrics["champion_score"] == 1000.9


def test_a_model_that_does_not_beat_the_baseline_is_not_promoted(make_config, mlflow_uri, spark):
    config = make_config(app="tests.test_ml_update:FAKE", **{"ml.eval.candidates": 2, "ml.eval.search": "grid"})
    result, notices = generation(config, spark, [0.5, 0.6], baseline=0.7)
    assert not result.promoted and result.reason == "score 0.6 does not beat the baseline at 0.7"
    assert notices == [] and registry.get_alias_version(config, "champion") is None
    run = MlflowClient(tracking_uri=mlflow_uri).get_run(result.run_id).data
    assert run.metrics["baseline_score"] == 0.7 and run.tags["promoted"] == "false"
    assert result.registered.version == 1  # registered for inspection, without the alias
    # the gate can be switched off; then the same candidates are promoted
    lenient = config.with_overrides(["headwater.ml.eval.beat-baseline=false"])
    assert generation(lenient, spark, [0.5, 0.6], baseline=0.7)[0].promoted


def test_test_fraction_zero_builds_one_model_on_all_the_data_and_publishes_it_ungated(make_config, mlflow_uri, spark):
    """Oryx: test-fraction = 0 disables evaluation; the model is built on all data and published."""
    config = make_config(app="tests.test_ml_update:FAKE", **{"ml.eval.test-fraction": 0, "ml.eval.candidates": 5,
                                                             "ml.eval.search": "grid", "ml.eval.threshold": 5000})
    first, notices = generation(config, spark, [0.5, 0.9], baseline=2000)
    assert first.promoted and "no evaluation" in first.reason and len(first.candidates) == 1
    assert Quality.load(registry.download_alias(config, "champion").path) == 1000.5  # all 10 rows
    assert [n.version for n in notices] == [1]
    version = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri).get_model_version(config.app_id, "1")
    assert version.tags["refit"] == "true" and "score" not in version.tags
    # a champion is there, worse on nothing held out: the next generation is published too
    second, notices = generation(config, spark, [0.1])
    assert second.promoted and registry.get_alias_version(config, "champion") == 2
