"""`headwater oryx-conf`: Oryx 2's own example configs (app/conf/*-example.conf in OryxProject/oryx, their
values written here by hand) become headwater configs that load, with every untranslatable key named."""
from __future__ import annotations

import pytest

from headwater.cli import main
from headwater.cli.oryx_conf import read_oryx_config, translate
from headwater.config import ConfigError, load_config

COMMON = """
kafka-brokers = "b03.example.com:9092,b04.example.com:9092"
zk-servers = "b01.example.com:2181,b02.example.com:2181"
hdfs-base = "hdfs:///user/example/Oryx"
oryx {
  id = "%(id)s"
  input-topic { broker = ${kafka-brokers}, lock = { master = ${zk-servers} } }
  update-topic { broker = ${kafka-brokers}, lock = { master = ${zk-servers} } }
  batch {
    streaming { generation-interval-sec = 300, num-executors = 4, executor-cores = 8, executor-memory = "4g" }
    update-class = "com.cloudera.oryx.app.batch.mllib.%(batch)s"
    storage { data-dir = ${hdfs-base}"/data/", model-dir = ${hdfs-base}"/model/" }
    ui { port = 4040 }
  }
  speed { model-manager-class = "com.cloudera.oryx.app.speed.%(speed)s", ui { port = 4041 } }
  serving {
    model-manager-class = "com.cloudera.oryx.app.serving.%(serving)s"
    application-resources = "%(resources)s"
    api { port = 8080 }
  }
  %(extra)s
}
"""
ALS = COMMON % {"id": "ALSExample", "batch": "als.ALSUpdate", "speed": "als.ALSSpeedModelManager",
                "serving": "als.model.ALSServingModelManager",
                "resources": "com.cloudera.oryx.app.serving,com.cloudera.oryx.app.serving.als",
                "extra": "als { rescorer-provider-class = null }"}
KMEANS = COMMON % {"id": "KMeansExample", "batch": "kmeans.KMeansUpdate", "speed": "kmeans.KMeansSpeedModelManager",
                   "serving": "kmeans.model.KMeansServingModelManager",
                   "resources": "com.cloudera.oryx.app.serving,com.cloudera.oryx.app.serving.clustering,"
                                "com.cloudera.oryx.app.serving.kmeans",
                   "extra": 'input-schema = { num-features = 42, categorical-features = [], '
                            'ignored-features = [ "1", "2", "3", "41" ] }'}
RDF_RESOURCES = ("com.cloudera.oryx.app.serving,com.cloudera.oryx.app.serving.classreg,"
                 "com.cloudera.oryx.app.serving.rdf")
RDF_CLASSIFICATION = COMMON % {
    "id": "RDFClassificationExample", "batch": "rdf.RDFUpdate", "speed": "rdf.RDFSpeedModelManager",
    "serving": "rdf.model.RDFServingModelManager", "resources": RDF_RESOURCES,
    "extra": 'input-schema = { feature-names = [ "SepalLength", "SepalWidth", "PetalLength", "PetalWidth", '
             '"Species" ], categorical-features = [ "Species" ], target-feature = "Species" }'}
RDF_REGRESSION = COMMON % {
    "id": "RDFRegressionExample", "batch": "rdf.RDFUpdate", "speed": "rdf.RDFSpeedModelManager",
    "serving": "rdf.model.RDFServingModelManager", "resources": RDF_RESOURCES,
    "extra": """input-schema = {
    feature-names = ["county", "route", "start", "end", "length", "exposure", "threshold", "rate"]
    categorical-features = ["county", "route", "threshold"]
    numeric-features = ["start", "end", "length", "exposure", "rate"]
    target-feature = "rate"
    num-features = 8
  }
  rdf {
    hyperparams { "max-depth" = 8, "min-node-size" = 16, "max-split-candidates" = 100, impurity = variance,
                  "min-info-gain-nats" = 0.001 }
    "num-trees" = 20
  }"""}


def translated(tmp_path, text: str, name: str = "oryx.conf"):
    source = tmp_path / name
    source.write_text(text)
    output = translate(read_oryx_config(source))
    target = tmp_path / f"headwater-{name}"
    target.write_text(output.text())
    return load_config(target), output


@pytest.mark.parametrize("text, app", [(ALS, "als"), (KMEANS, "kmeans"), (RDF_CLASSIFICATION, "rdf-classification"),
                                       (RDF_REGRESSION, "rdf-regression")])
def test_oryx_example_configs_translate_to_configs_that_load(tmp_path, text, app):
    config, output = translated(tmp_path, text)
    assert config.get("headwater.app") == app and config.get("headwater.id").endswith("Example")
    assert config.get("headwater.kafka.bootstrap-servers") == "b03.example.com:9092,b04.example.com:9092"
    assert config.get("headwater.batch.generation-interval-sec") == 300
    assert config.get("headwater.serving.port") == 8080
    assert config.get("headwater.spark.conf")["spark.executor.memory"] == "4g"
    assert config.get("headwater.storage.root") == "hdfs:///user/example/Oryx/data/"
    assert config.get("headwater.speed.trigger-interval-sec") == 10  # Oryx's default, not headwater's 1
    untranslated = {key: why for key, _, why in output.untranslated}
    assert set(untranslated) == {"oryx.input-topic.lock.master", "oryx.update-topic.lock.master",
                                 "oryx.batch.storage.model-dir", "oryx.batch.ui.port", "oryx.speed.ui.port"}
    assert "ZooKeeper" in untranslated["oryx.input-topic.lock.master"]
    assert "MLflow" in untranslated["oryx.batch.storage.model-dir"]
    assert all(f"#   {key} = " in output.text() for key in untranslated)


def test_each_app_s_own_settings_and_oryx_s_defaults(tmp_path):
    als, _ = translated(tmp_path, ALS, "als.conf")
    assert als.get("headwater.als.hyperparams.lambda") == 0.001  # Oryx's default λ
    kmeans, _ = translated(tmp_path, KMEANS, "kmeans.conf")
    assert kmeans.get("headwater.input-schema.feature-names") == [str(n) for n in range(42)]
    assert kmeans.get("headwater.input-schema.ignored-features") == ["1", "2", "3", "41"]
    regression, _ = translated(tmp_path, RDF_REGRESSION, "regression.conf")
    hp = regression.section("headwater.rdf.hyperparams")
    assert (hp["max-depth"], hp["min-node-size"], hp["impurity"], hp["min-info-gain"]) == (8, 16, "variance", 0.001)
    assert regression.get("headwater.rdf.num-trees") == 20


def test_ranges_names_and_untranslatable_values(tmp_path):
    config, output = translated(tmp_path, """oryx {
      id = x, batch.update-class = "com.cloudera.oryx.app.batch.mllib.als.ALSUpdate"
      als { logStrength = true, hyperparams { features = [10, 50], lambda = 0.01, alpha = [1, 3.5] },
            sample-rate = 0.5, rescorer-provider-class = "com.example.MyRescorer" }
      ml.eval { hyperparam-search = grid, candidates = 4, test-fraction = 0 }
      serving { min-model-load-fraction = 0.8, api { keystore-file = "/k.jks", secure-port = 443 } }
      kmeans.evaluation-strategy = DAVIES_BOULDIN
    }""")
    assert config.get("headwater.als.hyperparams.features") == {"min": 10, "max": 50}  # Oryx's range
    assert config.get("headwater.als.hyperparams.alpha") == {"min": 1, "max": 3.5}
    assert config.get("headwater.als.hyperparams.lambda") == 0.01  # a scalar stays fixed
    assert (config.get("headwater.als.log-strength"), config.get("headwater.ml.eval.search"),
            config.get("headwater.ml.eval.test-fraction")) == (True, "grid", 0)
    assert config.get("headwater.serving.port") == 80  # Oryx's default port
    why = {key: reason for key, _, reason in output.untranslated}
    assert "atomically" in why["oryx.serving.min-model-load-fraction"]
    assert "PEM" in why["oryx.serving.api.keystore-file"] and "tls" in why["oryx.serving.api.secure-port"]
    assert "Python provider" in why["oryx.als.rescorer-provider-class"]
    assert "batch.window" in why["oryx.als.sample-rate"]
    assert "this config's app is als" in why["oryx.kmeans.evaluation-strategy"]


def test_the_command_prints_the_translation_and_refuses_a_non_oryx_file(tmp_path, capsys):
    source = tmp_path / "als.conf"
    source.write_text(ALS)
    assert main(["oryx-conf", str(source)]) == 0
    printed = capsys.readouterr().out
    assert '  app = "als"' in printed and "# Oryx keys not translated:" in printed
    other = tmp_path / "other.conf"
    other.write_text("headwater { id = x }")
    assert main(["oryx-conf", str(other)]) == 2
    assert "not an Oryx 2 config" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="cannot parse"):
        read_oryx_config(_broken(tmp_path))


def _broken(tmp_path):
    path = tmp_path / "broken.conf"
    path.write_text("oryx { id = ")
    return path
