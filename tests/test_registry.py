"""The registry module against a real MLflow sqlite store: log, register, tag, alias, download."""
from __future__ import annotations

import shutil
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from headwater import registry


class ReadsArtifact(mlflow.pyfunc.PythonModel):
    """Answers every row with the text of the ``note`` file of its ``model`` artifact."""

    def load_context(self, context):
        self.note = (Path(context.artifacts[registry.MODEL_ARTIFACT]) / "note" / "text.txt").read_text()

    def predict(self, context, model_input, params=None):
        return pd.Series([self.note] * len(model_input))


def artifacts(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / f"artifacts-{text}"
    (directory / "note").mkdir(parents=True)
    (directory / "note" / "text.txt").write_text(text)
    return directory


def test_missing_model_or_alias_is_none(make_config):
    config = make_config()
    assert registry.download_alias(config, "champion") is None
    assert registry.get_alias_version(config, "champion") is None
    registry.log_and_register(config, artifacts(Path(config.storage_root), "v1"), ReadsArtifact(), {}, aliases=[])
    assert registry.download_alias(config, "champion") is None


def test_log_register_alias_and_download(make_config, mlflow_uri, tmp_path):
    config = make_config()
    first = registry.log_and_register(config, artifacts(tmp_path, "one"), ReadsArtifact(),
                                      {"layer": "batch", "delta_version": 3}, aliases=["champion"])
    second = registry.log_and_register(config, artifacts(tmp_path, "two"), ReadsArtifact(),
                                       {"layer": "speed", "base_version": 1}, aliases=["speed"])

    assert (first.name, first.version, second.version) == (config.app_id, 1, 2)
    assert registry.registered_model_name(config) == config.app_id
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    version = client.get_model_version(config.app_id, "1")
    assert version.tags == {"layer": "batch", "delta_version": "3"}
    assert client.get_run(version.run_id).info.experiment_id == registry.experiment_id(config)
    assert registry.get_alias_version(config, "champion") == 1
    assert registry.get_alias_version(config, "speed") == 2

    shutil.rmtree(first.path.parent)  # drop the local cache: the next read downloads
    champion = registry.download_alias(config, "champion")
    assert (champion.version, champion.tags["layer"], champion.run_id) == (1, "batch", version.run_id)
    assert (champion.path / "note" / "text.txt").read_text() == "one"

    registry.set_alias(config, "champion", 2)
    assert (registry.download_alias(config, "champion").path / "note" / "text.txt").read_text() == "two"
    loaded = mlflow.pyfunc.load_model(f"models:/{config.app_id}@champion")
    assert loaded.predict(pd.DataFrame({"x": [1, 2]})).tolist() == ["two", "two"]


def test_artifacts_stay_next_to_a_sqlite_store(make_config, mlflow_uri):
    config = make_config()
    experiment = MlflowClient(tracking_uri=mlflow_uri).get_experiment(registry.experiment_id(config))
    database_dir = Path(mlflow_uri.removeprefix("sqlite:///")).parent
    assert experiment.artifact_location == (database_dir / "mlartifacts" / config.app_id).as_uri()


def test_a_run_id_logs_into_that_run(make_config, mlflow_uri, tmp_path):
    config = make_config()
    client = MlflowClient(tracking_uri=mlflow_uri)
    run = client.create_run(registry.experiment_id(config))
    registered = registry.log_and_register(config, artifacts(tmp_path, "x"), ReadsArtifact(), {}, [],
                                           run_id=run.info.run_id)
    assert registered.run_id == run.info.run_id


def test_set_alias_on_a_missing_version_fails_loudly(make_config, tmp_path):
    config = make_config()
    registry.log_and_register(config, artifacts(tmp_path, "x"), ReadsArtifact(), {}, [])
    with pytest.raises(MlflowException):
        registry.set_alias(config, "champion", 7)


def test_update_offset_tags():
    from headwater.registry import parse_offsets_tag

    assert parse_offsets_tag("42") == {0: 42}
    assert parse_offsets_tag('{"0": 7, "1": 9}') == {0: 7, 1: 9}
    assert parse_offsets_tag(None) is None
