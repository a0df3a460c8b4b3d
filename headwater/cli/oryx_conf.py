"""``headwater oryx-conf FILE``: an Oryx 2 HOCON config (``oryx.*``) as the equivalent headwater config.

Each ``oryx.*`` leaf (substitutions resolved) is translated by :data:`RULES` to a headwater key, or
named with the reason it cannot be; Oryx's defaults that differ from headwater's (λ, the serving port,
the forest's min-node-size and min-info-gain, the batch and speed intervals) are written too, so the
translated deployment behaves as the Oryx one did. A two-number list, which Oryx reads as a range,
becomes a range ``{min, max}``; a scalar stays fixed. The output is HOCON that ``--conf`` loads; the keys
it could not translate are comments at its top.

>>> out = translate(_parse('oryx { id = Ex, batch.update-class = "com.cloudera.oryx.app.batch.mllib.als.'
...                       'ALSUpdate", als.hyperparams.features = [10, 50], input-topic.lock.master = "zk:2181" }'))
>>> out.values[("als", "hyperparams", "features")], out.untranslated[0][0]
({'min': 10, 'max': 50}, 'oryx.input-topic.lock.master')
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyhocon import ConfigFactory, ConfigTree

from headwater.config import ConfigError

APP_CLASSES = {"ALSUpdate": "als", "KMeansUpdate": "kmeans", "RDFUpdate": "rdf",
               "ALSSpeedModelManager": "als", "KMeansSpeedModelManager": "kmeans", "RDFSpeedModelManager": "rdf",
               "ALSServingModelManager": "als", "KMeansServingModelManager": "kmeans",
               "RDFServingModelManager": "rdf"}
CLASS_KEYS = ("oryx.batch.update-class", "oryx.speed.model-manager-class", "oryx.serving.model-manager-class")
SPARK_RESOURCES = {"num-executors": "spark.executor.instances", "executor-cores": "spark.executor.cores",
                   "executor-memory": "spark.executor.memory", "driver-memory": "spark.driver.memory",
                   "dynamic-allocation": "spark.dynamicAllocation.enabled", "deploy-mode": "spark.submit.deployMode"}
SAME_NAME = [
    "als.iterations", "als.implicit", "als.no-known-items", "als.decay.factor", "als.decay.zero-threshold",
    "kmeans.iterations", "rdf.hyperparams.impurity", "ml.eval.test-fraction", "ml.eval.candidates",
    "ml.eval.parallelism", "ml.eval.threshold", "input-schema.feature-names", "input-schema.id-features",
    "input-schema.ignored-features", "input-schema.numeric-features", "input-schema.categorical-features",
    "input-schema.target-feature", "serving.api.user-name", "serving.api.password", "serving.api.read-only",
    "serving.api.context-path",
]
HYPERPARAMS = ["als.hyperparams.features", "als.hyperparams.lambda", "als.hyperparams.alpha",
               "als.hyperparams.epsilon", "kmeans.hyperparams.k", "rdf.num-trees", "rdf.hyperparams.min-node-size",
               "rdf.hyperparams.max-split-candidates", "rdf.hyperparams.max-depth"]
RENAMED = {
    "als.logStrength": "als.log-strength", "ml.eval.hyperparam-search": "ml.eval.search",
    "rdf.hyperparams.min-info-gain-nats": "rdf.hyperparams.min-info-gain",
    "input-topic.broker": "kafka.bootstrap-servers", "update-topic.message.max-size": "kafka.max-message-bytes",
    "batch.streaming.generation-interval-sec": "batch.generation-interval-sec",
    "batch.streaming.master": "spark.master", "batch.storage.data-dir": "storage.root",
    "speed.streaming.generation-interval-sec": "speed.trigger-interval-sec", "serving.api.port": "serving.port",
}
# (a prefix of oryx keys, why headwater has no such setting)
UNTRANSLATABLE = [
    ("input-topic.lock", "headwater's Kafka clients need no ZooKeeper"),
    ("update-topic.lock", "headwater's Kafka clients need no ZooKeeper"),
    ("input-topic.message.topic", "headwater names its topics from headwater.id: <id>.input"),
    ("update-topic.message.topic", "headwater names its topics from headwater.id: <id>.update"),
    ("input-topic.message", "headwater's messages are UTF-8 text: no key or message classes"),
    ("update-topic.message", "headwater's messages are UTF-8 text: no encoder or decoder classes"),
    ("batch.storage.model-dir", "models live in the MLflow registry (headwater.mlflow.tracking-uri)"),
    ("batch.storage.max-age-data-hours", "the Delta table keeps its history: see headwater.maintenance."
                                         "retention-hours, and headwater.batch.window to train on recent events"),
    ("batch.storage.max-age-model-hours", "models are MLflow versions, kept until deleted there"),
    ("batch.storage", "Delta Lake stores the events: no Hadoop writable classes"),
    ("batch.ui", "the Spark UI is off (spark.ui.enabled under headwater.spark.conf; spark.ui.port sets its port)"),
    ("speed.ui", "the Spark UI is off (spark.ui.enabled under headwater.spark.conf; spark.ui.port sets its port)"),
    ("speed.streaming", "one headwater.spark section serves every layer: give the speed process its resources "
                        "with -D headwater.spark.conf...."),
    ("speed.min-model-load-fraction", "the speed layer starts from the whole champion (loaded, then swapped in)"),
    ("serving.min-model-load-fraction", "a serving replica swaps a fully loaded model in atomically: it answers "
                                        "503 until the first is loaded, then never from a partial one"),
    ("serving.api.secure-port", "HTTPS is served on headwater.serving.port when headwater.serving.api.tls."
                                "cert-file and key-file are set"),
    ("serving.api.keystore", "headwater takes PEM files: headwater.serving.api.tls.cert-file and key-file "
                             "(export them from the keystore with keytool and openssl)"),
    ("serving.api.key-alias", "headwater takes PEM files: headwater.serving.api.tls.cert-file and key-file"),
    ("serving.memory", "headwater serve is one process: size it with your process manager"),
    ("serving.yarn", "headwater serve is one process: place and replicate it with your process manager"),
    ("serving.no-init-topics", "headwater serve never creates topics (headwater stack or your Kafka does)"),
    ("serving.application-resources", "a custom endpoint package: add routes through an App (headwater.api)"),
    ("als.sample-rate", "headwater samples no input: headwater.batch.window trains on the most recent events"),
    ("als.rescorer-provider-class", "a Java class: write a Python provider (serving_layer/rescorers.py) and "
                                    "name it in headwater.serving.rescorer"),
    ("batch.update-class", "a custom Java update class: write a headwater App (headwater.api)"),
    ("speed.model-manager-class", "a custom Java speed manager: write a headwater App (headwater.api)"),
    ("serving.model-manager-class", "a custom Java serving manager: write a headwater App (headwater.api)"),
]
# Oryx's defaults (its reference.conf) where headwater's differ, written unless the file sets the key
ORYX_DEFAULTS = {
    "als": {"als.hyperparams.lambda": 0.001},
    "rdf": {"rdf.hyperparams.min-node-size": 16, "rdf.hyperparams.min-info-gain": 0.001},
    "*": {"serving.port": 80, "batch.generation-interval-sec": 21600, "speed.trigger-interval-sec": 10},
}


@dataclass
class Translation:
    values: dict[tuple[str, ...], Any] = field(default_factory=dict)  # path below headwater -> value
    untranslated: list[tuple[str, Any, str]] = field(default_factory=list)  # (oryx key, value, why)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        head = ["# headwater config translated from an Oryx 2 config by `headwater oryx-conf`"]
        head += [f"# {note}" for note in self.notes]
        if self.untranslated:
            head.append("# Oryx keys not translated:")
            head += [f"#   {key} = {json.dumps(value)}: {why}" for key, value, why in self.untranslated]
        tree: dict = {}
        for path, value in self.values.items():
            node = tree
            for segment in path[:-1]:
                node = node.setdefault(segment, {})
            node[path[-1]] = value
        return "\n".join([*head, *_render({"headwater": tree}, "")]) + "\n"


def _render(tree: dict, indent: str) -> Iterable[str]:
    for key, value in tree.items():
        name = key if key.replace("-", "").isalnum() else json.dumps(key)  # "spark.ui.port" stays one key
        if isinstance(value, dict) and value and not {"min", "max"} >= set(value):
            yield f"{indent}{name} {{"
            yield from _render(value, indent + "  ")
            yield f"{indent}}}"
        else:
            yield f"{indent}{name} = {json.dumps(value)}"


def _parse(text: str) -> ConfigTree:
    return ConfigFactory.parse_string(text)


def read_oryx_config(path: str | Path) -> ConfigTree:
    try:
        return ConfigFactory.parse_file(str(path))
    except Exception as exc:  # pyhocon raises several unrelated types for syntax errors
        raise ConfigError(f"cannot parse {path}: {exc}") from exc


def _leaves(tree: ConfigTree, prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in tree.items():
        path = f"{prefix}{key}".replace('"', "")
        if isinstance(value, ConfigTree) and len(value):
            yield from _leaves(value, path + ".")
        else:
            yield path, _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, ConfigTree):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return None if type(value).__name__ == "NoneValue" else value


def _hyperparam(value: Any) -> Any:
    """Oryx's reading of a hyperparameter: a two-number list is a range, anything else stays."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return {"min": min(value), "max": max(value)}
    return value


def _app(leaves: dict[str, Any]) -> str | None:
    for key in CLASS_KEYS:
        app = APP_CLASSES.get(str(leaves.get(key) or "").rsplit(".", 1)[-1])
        if app == "rdf":
            target, categorical = leaves.get("oryx.input-schema.target-feature"), \
                leaves.get("oryx.input-schema.categorical-features") or []
            return "rdf-classification" if target in categorical else "rdf-regression"
        if app:
            return app
    return None


def translate(tree: ConfigTree) -> Translation:
    """The headwater lines for an Oryx config tree (see the module docstring)."""
    oryx = tree.get("oryx", None)
    if not isinstance(oryx, ConfigTree):
        raise ConfigError("the file has no oryx { ... } section: it is not an Oryx 2 config")
    leaves = dict(_leaves(oryx, "oryx."))
    out = Translation()
    values: dict[tuple[str, ...], Any] = {}
    app = _app(leaves)
    if app is not None:
        values[("app",)] = app
    else:
        out.notes.append("no Oryx update or model manager class names a built-in app: set headwater.app")
    for key, value in leaves.items():
        rule = _rule(key[len("oryx."):], value, app)
        if isinstance(rule, str):
            out.untranslated.append((key, value, rule))
        elif rule is not None:
            target, translated = _segments(rule[0]), rule[1]
            if target in values and values[target] != translated:
                out.untranslated.append((key, value, f"headwater has one {'.'.join(target)} "
                                                     f"(already {values[target]!r})"))
            elif translated is not None:
                values[target] = translated
    _feature_names(leaves, values)
    family = "rdf" if app and app.startswith("rdf") else app
    for scope in (family, "*"):
        for target, default in ORYX_DEFAULTS.get(scope, {}).items():
            if _segments(target) not in values:
                values[_segments(target)] = default
                out.notes.append(f"headwater.{target} = {default}: Oryx's default (headwater's differs)")
    out.values = values
    return out


def _segments(target: str | tuple[str, ...]) -> tuple[str, ...]:
    return target if isinstance(target, tuple) else tuple(target.split("."))


def _rule(key: str, value: Any, app: str | None) -> tuple[str | tuple[str, ...], Any] | str | None:
    """(headwater key, value), a reason it cannot be translated, or None (nothing to write)."""
    section = key.split(".", 1)[0]
    if section in ("als", "kmeans", "rdf") and app is not None and not app.startswith(section):
        return f"a setting of Oryx's {section} app; this config's app is {app}"
    if key in CLASS_KEYS_SHORT and APP_CLASSES.get(str(value or "").rsplit(".", 1)[-1]):
        return None  # a built-in app's class: headwater.app says it
    if key == "serving.application-resources" and all(
            p.strip().startswith("com.cloudera.oryx.app.serving") for p in str(value or "").split(",")):
        return None  # Oryx's own endpoints: the app's blueprint serves them
    if key in ("als.rescorer-provider-class", "input-schema.num-features") and value in (None, 0):
        return None
    if key == "input-schema.num-features":
        return None  # names the features when feature-names is empty (see _feature_names)
    if key in HYPERPARAMS:
        return key, _hyperparam(value)
    if key in RENAMED:
        return RENAMED[key], _hyperparam(value) if key == "rdf.hyperparams.min-info-gain-nats" else value
    if key in SAME_NAME:
        return key, value
    if key == "id":
        return "id", value
    if key == "update-topic.broker":
        return "kafka.bootstrap-servers", value
    for rule in SPARK_RULES:
        translated = rule(key, value)
        if translated is not None:
            return translated
    if key in ("kmeans.initialization-strategy", "kmeans.evaluation-strategy"):
        return key, str(value).lower().replace("_", "-")
    for prefix, why in UNTRANSLATABLE:
        if key == prefix or key.startswith(prefix + ".") or key.startswith(prefix + "-"):
            return why
    return "headwater has no such setting"


CLASS_KEYS_SHORT = tuple(k[len("oryx."):] for k in CLASS_KEYS)


def _batch_resources(key: str, value: Any) -> tuple[tuple[str, ...], Any] | None:
    name = key.removeprefix("batch.streaming.")
    if key.startswith("batch.streaming.") and name in SPARK_RESOURCES:
        return ("spark", "conf", SPARK_RESOURCES[name]), _spark_value(value)
    return None


def _spark_settings(key: str, value: Any) -> tuple[tuple[str, ...], Any] | None:
    for prefix in ("batch.streaming.config.", "default-streaming-config."):
        if key.startswith(prefix):
            return ("spark", "conf", key.removeprefix(prefix)), _spark_value(value)
    return None


def _spark_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


SPARK_RULES: list[Callable[[str, Any], tuple[tuple[str, ...], Any] | None]] = [_batch_resources, _spark_settings]


def _feature_names(leaves: dict[str, Any], values: dict[tuple[str, ...], Any]) -> None:
    """Oryx names the features "0", "1", ... when only input-schema.num-features is given."""
    count = leaves.get("oryx.input-schema.num-features") or 0
    if count and not values.get(("input-schema", "feature-names")):
        values[("input-schema", "feature-names")] = [str(n) for n in range(int(count))]


__all__ = ["Translation", "read_oryx_config", "translate"]
