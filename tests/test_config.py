import subprocess
import sys

import pytest

from headwater.config import ConfigError, load_config


def write(tmp_path, text, name="app.conf"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_file_overrides_reference_and_d_overrides_file(tmp_path):
    path = write(tmp_path, 'headwater { id = "a", app = "als", kafka.input-partitions = 8 }')
    config = load_config(path, ["headwater.kafka.input-partitions=2", "serving.port=9999"])
    assert config.get("headwater.kafka.input-partitions") == 2
    assert config.get("headwater.serving.port") == 9999
    assert config.get("headwater.kafka.update-partitions") == 1  # reference default
    assert config.source_of("headwater.kafka.input-partitions") == "-D headwater.kafka.input-partitions"


def test_unknown_key_names_key_and_file(tmp_path):
    path = write(tmp_path, 'headwater { id = "a", app = "als", kafka.bootstrap-server = "x:1" }')
    with pytest.raises(ConfigError, match=r"headwater\.kafka\.bootstrap-server is not a headwater "
                                          r"configuration key \(in .*app\.conf; keys are declared by the core "
                                          r"or app 'als'\)"):
        load_config(path)


def test_bad_value_names_key_file_and_value(tmp_path):
    path = write(tmp_path, 'headwater { id = "a", app = "als", als.hyperparams.features = [0] }')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "headwater.als.hyperparams.features" in message and "app.conf" in message and "[0]" in message


def test_wrong_type_is_an_error(tmp_path):
    path = write(tmp_path, 'headwater { id = "a", app = "als", kafka.input-partitions = "many" }')
    with pytest.raises(ConfigError, match="headwater.kafka.input-partitions must be an int"):
        load_config(path)


def test_missing_file_and_bad_override_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.conf")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(overrides=["headwater.id"])


def test_unknown_app_is_an_error():
    with pytest.raises(ConfigError, match="headwater.app must be one of"):
        load_config(overrides=["headwater.id=a", "headwater.app=nosuch"])


def test_open_sections_accept_any_key(tmp_path):
    path = write(tmp_path, 'headwater { id = "a", app = "als", spark.conf { "spark.executor.memory" = "2g" } }')
    assert load_config(path).section("headwater.spark.conf")["spark.executor.memory"] == "2g"


def test_secret_from_environment(tmp_path):
    code = ("from headwater.config import load_config;"
            "print(load_config(overrides=['headwater.id=a','headwater.app=als'])"
            ".get('headwater.mlflow.tracking-uri'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"MLFLOW_TRACKING_URI": "https://user:secret@mlflow.example", "PATH": ""})
    assert out.stdout.strip() == "https://user:secret@mlflow.example"


def test_example_configs_load():
    from pathlib import Path

    for path in sorted(Path(__file__).parent.parent.glob("conf/*.conf")):
        if path.name != "reference.conf":
            config = load_config(path)
            assert config.app_id and config.get("headwater.app")


def test_derived_names():
    config = load_config(overrides=["headwater.id=shop", "headwater.app=als", "headwater.storage.root=/data"])
    assert config.table_uri("events") == "/data/shop/events"
    assert config.checkpoint_uri("ingest") == "/data/shop/_checkpoints/ingest"


def test_with_overrides_is_checked_like_load_config():
    config = load_config(overrides=["headwater.id=a", "headwater.app=als"])
    assert config.with_overrides(["headwater.ml.eval.candidates=3"]).get("headwater.ml.eval.candidates") == 3
    with pytest.raises(ConfigError, match="headwater.ml.eval.candidates must be an int"):
        config.with_overrides(["headwater.ml.eval.candidates=0"])


def test_an_app_brings_its_own_keys_and_another_apps_keys_are_unknown(tmp_path):
    config = load_config(overrides=["headwater.id=a", "headwater.app=kmeans"])
    assert config.get("headwater.kmeans.iterations") == 30 and config.get("headwater.als.implicit", None) is None
    assert "headwater/apps/kmeans/reference.conf" in config.source_of("headwater.kmeans.iterations")
    path = write(tmp_path, 'headwater { id = "a", app = "kmeans", als.implicit = false }')
    with pytest.raises(ConfigError, match=r"headwater\.als\.implicit is not a headwater configuration key .*"
                                          r"app 'kmeans'"):
        load_config(path)


def test_a_plug_in_app_declares_its_keys_defaults_and_constraints(tmp_path):
    config = load_config(overrides=["headwater.id=a", "headwater.app=tests.plugin_app:APP"])
    assert config.app.name == "key-means" and config.get("headwater.key-means.hyperparams.prior") == [0.0, 2.0]
    with pytest.raises(ConfigError, match=r"headwater\.key-means\.hyperparams\.prior must be a list whose items "
                                          r"each be a number in the range \[0, inf\) in -D"):
        load_config(overrides=["headwater.id=a", "headwater.app=tests.plugin_app:APP",
                               "headwater.key-means.hyperparams.prior=[-1]"])
