"""Layered HOCON configuration: reference defaults, the app's own reference, a `--conf` file, `-D` overrides.

The core's ``reference.conf`` declares the framework's keys; the app that ``headwater.app`` names brings
its own ``reference.conf`` for its section (``headwater.als`` and so on) and its constraints. Every key
must be declared by one of the two (except under the open sections), and every constraint is checked
once at start-up, so a typo or a bad value stops the process with the key's full path and the file that
set it.

>>> cfg = load_config(overrides=["headwater.id=demo", "headwater.app=als"])
>>> cfg.get("headwater.kafka.input-partitions"), cfg.get("headwater.als.implicit")
(4, True)
>>> cfg.input_topic, cfg.update_topic, cfg.app.name
('demo.input', 'demo.update', 'als')
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from pyhocon import ConfigFactory, ConfigTree
from pyhocon.exceptions import ConfigException

from headwater.api import App
from headwater.apps import find_app
from headwater.constraints import (
    BOOL,
    NON_EMPTY_STRING,
    STRING,
    STRINGS,
    ConfigError,
    ContextPath,
    Interval,
    ListOf,
    OfType,
    Optional,
    Options,
    validate,
)
from headwater.kafka_settings import PROTOCOLS, SASL_MECHANISMS, KafkaSettings
from headwater.oryx_keys import KEY_ALIASES, ORYX_ONLY_KEYS, with_canonical_keys

REFERENCE_CONF = Path(__file__).with_name("reference.conf")
# Sections whose keys are user-defined, so they are not checked against the reference files.
OPEN_SECTIONS = ("headwater.spark.conf", "headwater.storage.options")
# Keys whose values are never shown, in error messages or anywhere else (the last path segment)
SECRET_KEY = re.compile(r"(^|-)(password|secret|tokens?)$")


def is_secret(path: str) -> bool:
    """True for keys holding credentials: their values are never echoed.

    >>> is_secret("headwater.serving.api.read-tokens"), is_secret("headwater.kafka.ssl.key-file")
    (True, False)
    """
    return bool(SECRET_KEY.search(path.rsplit(".", 1)[-1]))

# Constraints of the core keys; an app adds those of its section (App.constraints).
CORE_CONSTRAINTS: dict[str, Any] = {
    "headwater.id": OfType((str,), "a string naming the app instance"),
    "headwater.app": OfType((str,), "an app name or 'package.module:APP'"),
    "headwater.kafka.bootstrap-servers": STRING,
    "headwater.kafka.input-partitions": Interval(int, 1),
    "headwater.kafka.update-partitions": Interval(int, 1, 1),
    "headwater.kafka.max-records-per-trigger": Interval(int, 1),
    "headwater.kafka.max-records-per-split": Interval(int, 1),
    "headwater.kafka.starting-offsets": STRING,
    "headwater.kafka.fail-on-data-loss": BOOL,
    "headwater.kafka.poll-timeout-ms": Interval(int, 1),
    "headwater.kafka.max-message-bytes": Interval(int, 1024),
    "headwater.kafka.security-protocol": Options(PROTOCOLS),
    "headwater.kafka.ssl.ca-file": Optional(STRING),
    "headwater.kafka.ssl.cert-file": Optional(STRING),
    "headwater.kafka.ssl.key-file": Optional(STRING),
    "headwater.kafka.ssl.key-password": Optional(STRING),
    "headwater.kafka.ssl.check-hostname": BOOL,
    "headwater.kafka.sasl.mechanism": Optional(Options(SASL_MECHANISMS)),
    "headwater.kafka.sasl.user-name": Optional(STRING),
    "headwater.kafka.sasl.password": Optional(STRING),
    "headwater.storage.root": STRING,
    "headwater.mlflow.tracking-uri": STRING,
    "headwater.mlflow.experiment": Optional(STRING),
    "headwater.spark.master": STRING,
    "headwater.spark.app-name": STRING,
    "headwater.stack.var-dir": STRING,
    "headwater.stack.broker-host": STRING,
    "headwater.stack.broker-port": Interval(int, 1, 65535),
    "headwater.stack.mlflow-host": STRING,
    "headwater.stack.mlflow-port": Interval(int, 1, 65535),
    "headwater.stack.start-timeout-sec": Interval(float, 0, closed_low=False),
    "headwater.ingest.trigger-interval-sec": Interval(float, 0),
    "headwater.batch.generation-interval-sec": Interval(float, 0, closed_low=False),
    "headwater.batch.trigger-on-drift": BOOL,
    "headwater.batch.window": Optional(Interval(int, 1)),
    "headwater.batch.half-life": Optional(Interval(float, 0, closed_low=False)),
    "headwater.maintenance.after-generation": BOOL,
    "headwater.maintenance.target-file-mb": Interval(float, 0, closed_low=False),
    "headwater.maintenance.retention-hours": Interval(int, 0),
    "headwater.speed.trigger-interval-sec": Interval(float, 0),
    "headwater.speed.snapshot-interval-sec": Interval(float, 0, closed_low=False),
    "headwater.speed.drift.window-rows": Interval(int, 10),
    "headwater.rollout.auto-rollback": BOOL,
    "headwater.rollout.auto-promote": BOOL,
    "headwater.rollout.alpha": Interval(float, 0, 1, closed_low=False, closed_high=False),
    "headwater.rollout.block-size": Interval(int, 1),
    "headwater.rollout.margin": Interval(float, 0),
    "headwater.rollout.max-events": Interval(int, 1),
    "headwater.rollout.prior-scale": Interval(float, 0, closed_low=False),
    "headwater.rollout.latency-guard.enabled": BOOL,
    "headwater.rollout.latency-guard.multiple": Interval(float, 1),
    "headwater.rollout.latency-guard.window": Interval(int, 10),
    "headwater.speed.drift.alpha": Interval(float, 0, 1, closed_low=False, closed_high=False),
    "headwater.serving.host": STRING,
    "headwater.serving.port": Interval(int, 0, 65535),
    "headwater.serving.rescorer": Optional(STRING),
    "headwater.serving.max-loaded-versions": Interval(int, 1, 16),
    "headwater.serving.routing.challenger-percent": Interval(float, 0, 100),
    "headwater.serving.routing.shadow": BOOL,
    "headwater.serving.routing.shadow-queue": Interval(int, 1, 100_000),
    "headwater.serving.scoring.group-max-queries": Interval(int, 1, 256),
    "headwater.serving.scoring.group-wait-ms": Interval(float, 0, 100),
    "headwater.serving.ann.enabled": BOOL,
    "headwater.serving.ann.min-items": Interval(int, 1),
    "headwater.serving.ann.candidates": Interval(int, 1),
    "headwater.serving.ann.train-sample": Interval(int, 256),
    "headwater.serving.ann.rebuild-fraction": Interval(float, 0, 1, closed_low=False),
    "headwater.serving.ann.build-threads": Interval(int, 1, 64),
    "headwater.serving.max-body-bytes": Interval(int, 1),
    "headwater.serving.max-inflated-bytes": Interval(int, 1),
    "headwater.serving.write-timeout-sec": Interval(float, 0, closed_low=False),
    "headwater.input.max-line-bytes": Interval(int, 16),
    "headwater.input.max-id-length": Interval(int, 1),
    "headwater.input.max-abs-strength": Interval(float, 0, closed_low=False),
    "headwater.input.max-abs-feature": Interval(float, 0, closed_low=False),
    "headwater.input.min-timestamp-ms": Interval(int, -(2**63) + 1, 2**63 - 1),
    "headwater.input.max-timestamp-ms": Interval(int, -(2**63) + 1, 2**63 - 1),
    "headwater.serving.api.read-only": BOOL,
    "headwater.serving.api.read-tokens": ListOf(NON_EMPTY_STRING, allow_empty=True),
    "headwater.serving.api.write-tokens": ListOf(NON_EMPTY_STRING, allow_empty=True),
    "headwater.serving.api.user-name": Optional(NON_EMPTY_STRING),
    "headwater.serving.api.password": Optional(NON_EMPTY_STRING),
    "headwater.serving.api.tls.cert-file": Optional(STRING),
    "headwater.serving.api.tls.key-file": Optional(STRING),
    "headwater.serving.api.context-path": ContextPath(),
    "headwater.serving.api.compress-min-bytes": Interval(int, 0),
    "headwater.serving.api.threads": Interval(int, 1),
    "headwater.input-schema.feature-names": STRINGS,
    "headwater.input-schema.numeric-features": STRINGS,
    "headwater.input-schema.categorical-features": STRINGS,
    "headwater.input-schema.ignored-features": STRINGS,
    "headwater.input-schema.id-features": STRINGS,
    "headwater.input-schema.target-feature": Optional(STRING),
    "headwater.ml.eval.test-fraction": Interval(float, 0, 1, closed_high=False),
    "headwater.ml.eval.candidates": Interval(int, 1),
    "headwater.ml.eval.parallelism": Interval(int, 1),
    "headwater.ml.eval.search": Options(("random", "grid"), any_case=True),
    "headwater.ml.eval.threshold": Optional(Interval(float)),
    "headwater.ml.eval.max-regression": Interval(float, 0),
    "headwater.ml.eval.beat-baseline": BOOL,
    "headwater.ml.eval.refit": BOOL,
    "headwater.ml.eval.seed": Interval(int, 0),
}

Layer = tuple[str, ConfigTree]



class Config:
    """The merged configuration plus where each value came from (for error messages)."""

    def __init__(self, tree: ConfigTree, layers: Sequence[Layer], references: Sequence[Layer]):
        self._tree = tree
        self._layers = list(layers)
        self._references = list(references)

    def get(self, path: str, default: Any = ConfigException) -> Any:
        try:
            value = self._tree.get(path)
        except (ConfigException, KeyError):
            if default is ConfigException:
                raise ConfigError(f"{path} is missing from the configuration") from None
            return default
        return _plain(value)

    def section(self, path: str) -> dict[str, Any]:
        value = self.get(path, {})
        return value if isinstance(value, dict) else {}

    def source_of(self, path: str) -> str:
        """The file (or '-D override') that set ``path``, highest precedence first."""
        for name, layer in reversed([*self._references, *self._layers]):
            try:
                layer.get(path)
                return name
            except (ConfigException, KeyError):
                continue
        return str(REFERENCE_CONF)

    @cached_property
    def app(self) -> App:
        """The App that ``headwater.app`` names."""
        name = self.get("headwater.app", None)
        if name is None:
            raise ConfigError(f"headwater.app is not set (in {self.source_of('headwater.app')})")
        return find_app(name)

    # Names derived from the app id: one place decides them.
    @property
    def app_id(self) -> str:
        return self.get("headwater.id")

    @property
    def input_topic(self) -> str:
        return f"{self.app_id}.input"

    @property
    def update_topic(self) -> str:
        return f"{self.app_id}.update"

    @property
    def storage_root(self) -> str:
        root = self.get("headwater.storage.root")
        return root if "://" in root else os.path.abspath(root)

    def table_uri(self, name: str) -> str:
        return f"{self.storage_root.rstrip('/')}/{self.app_id}/{name}"

    def checkpoint_uri(self, query: str) -> str:
        return f"{self.storage_root.rstrip('/')}/{self.app_id}/_checkpoints/{query}"

    @cached_property
    def kafka(self) -> KafkaSettings:
        """How every Kafka client of this app reaches the brokers (``headwater.kafka.*``)."""
        return KafkaSettings.from_config(self)

    def with_overrides(self, overrides: Iterable[str]) -> Config:
        """This config with more ``key=value`` overrides, checked like :func:`load_config`'s."""
        return _checked([*self._layers, *(_override_layer(o) for o in overrides)])


# -D overrides handed to a child process (a JSON list of "key=value"): a command line is readable by
# every user of the machine (ps, /proc/<pid>/cmdline), a process's environment only by its owner.
OVERRIDES_ENV = "HEADWATER_CONFIG_OVERRIDES"


def overrides_from_environment() -> list[str]:
    """The overrides a parent passed in ``HEADWATER_CONFIG_OVERRIDES`` (applied before the command line's)."""
    raw = os.environ.get(OVERRIDES_ENV)
    if not raw:
        return []
    try:
        overrides = json.loads(raw)
    except ValueError:
        overrides = None
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{OVERRIDES_ENV} must be a JSON list of \"key=value\" strings")
    return overrides


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> Config:
    """Load the reference defaults (core and app), then ``path``, then ``key=value`` overrides, and validate."""
    layers = []
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"config file {path} does not exist")
        layers.append((str(path), _parse_file(Path(path))))
    layers.extend(_override_layer(o) for o in overrides)
    return _checked(layers)


def _checked(layers: Sequence[Layer]) -> Config:
    layers = [(name, with_canonical_keys(tree, name)) for name, tree in layers]
    core = (str(REFERENCE_CONF), _core_reference())
    app_name = _merge([core, *layers]).get("headwater.app", None)
    app = find_app(app_name) if app_name is not None else None
    references = [core]
    constraints = dict(CORE_CONSTRAINTS)
    if app is not None:
        references.append(_app_reference(app))
        constraints.update(app.constraints)
    tree = _merge([*references, *layers])
    config = Config(tree, layers, references)
    _check_known_keys(layers, references, app)
    validate(lambda p: config.get(p, None), config.source_of, constraints, is_secret)
    return config


def _core_reference() -> ConfigTree:
    if REFERENCE_CONF.is_file():
        return _parse(REFERENCE_CONF.read_text(), str(REFERENCE_CONF))
    # headwater imported from a zip (spark-submit --py-files): the file has no path of its own
    from importlib.resources import files

    return _parse(files("headwater").joinpath("reference.conf").read_text(), "headwater/reference.conf")


def _app_reference(app: App) -> Layer:
    name = f"{app.package.replace('.', '/')}/reference.conf"
    tree = _parse(app.reference_conf(), name)
    outside = [p for p in _leaf_paths(tree) if not (p + ".").startswith(app.config_section + ".")]
    if outside:
        raise ConfigError(f"app {app.name!r} declares {outside[0]} in {name}, outside its section "
                          f"{app.config_section}")
    return name, tree


def _check_known_keys(layers: Sequence[Layer], references: Sequence[Layer], app: App | None) -> None:
    """Every key a file or override sets must be declared by the core's or the app's reference.conf."""
    known = {p for _, tree in references for p in _leaf_paths(tree)}
    known_prefixes = {p.rsplit(".", i)[0] for p in known for i in range(p.count(".") + 1)}
    for name, layer in layers:
        for path in _leaf_paths(layer):
            if path in known or path in known_prefixes:  # a prefix: e.g. an empty object for a known section
                continue
            if any(path.startswith(k + ".") for k in known):  # an object as a key's value: a range {min, max}
                continue
            if any(path.startswith(s + ".") or path == s for s in OPEN_SECTIONS):
                continue
            if path in ORYX_ONLY_KEYS:
                raise ConfigError(f"{path} (in {name}) is Oryx's and has no headwater equivalent: "
                                  f"{ORYX_ONLY_KEYS[path]}")
            declared_by = f"the core or app {app.name!r}" if app is not None else "the core (no headwater.app set)"
            raise ConfigError(f"{path} is not a headwater configuration key (in {name}; keys are declared by "
                              f"{declared_by})")


def _parse_file(path: Path) -> ConfigTree:
    try:
        return ConfigFactory.parse_file(str(path))  # a file's includes resolve relative to it
    except Exception as exc:  # pyhocon raises several unrelated types for syntax errors
        raise ConfigError(f"cannot parse {path}: {exc}") from exc


def _parse(text: str, name: str) -> ConfigTree:
    try:
        return ConfigFactory.parse_string(text)
    except Exception as exc:  # pyhocon raises several unrelated types for syntax errors
        raise ConfigError(f"cannot parse {name}: {exc}") from exc


def _override_layer(override: str) -> Layer:
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override.strip()[:60]!r} must look like key=value")
    key = key.strip()
    if not key.startswith("headwater."):
        key = "headwater." + key
    try:
        tree = ConfigFactory.parse_string(f"{key} = {value.strip() or 'null'}")
    except Exception:
        tree = ConfigFactory.parse_string(f"{key} = {_quote(value.strip())}")
    # the layer is named by its key alone: a value may be a secret, and layer names go into messages
    return f"-D {key}", tree


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _merge(layers: Sequence[Layer]) -> ConfigTree:
    merged = ConfigTree()
    for _, layer in layers:
        merged = ConfigTree.merge_configs(merged, layer, copy_trees=True)
    return merged


def _leaf_paths(tree: ConfigTree, prefix: str = "") -> Iterable[str]:
    for key, value in tree.items():
        path = f"{prefix}{key}"  # pyhocon keeps the quotes of a quoted key such as "spark.ui.enabled"
        if isinstance(value, ConfigTree) and len(value) > 0:
            yield from _leaf_paths(value, path + ".")
        else:
            yield path


def _plain(value: Any) -> Any:
    if isinstance(value, ConfigTree):
        return {k.strip('"'): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if type(value).__name__ == "NoneValue":
        return None
    return value


__all__ = ["CORE_CONSTRAINTS", "KEY_ALIASES", "OVERRIDES_ENV", "Config", "ConfigError", "load_config",
           "overrides_from_environment"]
