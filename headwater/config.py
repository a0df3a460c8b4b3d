"""Layered HOCON configuration: reference defaults, a `--conf` file, then `-D key=value` overrides.

Every key must exist in ``conf/reference.conf`` (except under the open sections), and declared
constraints are checked once at start-up, so a typo or a bad value stops the process with the
key's full path and the file that set it.

>>> cfg = load_config(overrides=["headwater.id=demo", "headwater.app=als"])
>>> cfg.get("headwater.kafka.input-partitions")
4
>>> cfg.input_topic, cfg.update_topic
('demo.input', 'demo.update')
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyhocon import ConfigFactory, ConfigTree
from pyhocon.exceptions import ConfigException

REFERENCE_CONF = Path(__file__).with_name("reference.conf")
# Sections whose keys are user-defined, so they are not checked against reference.conf.
OPEN_SECTIONS = ("headwater.spark.conf", "headwater.serving.rescorer-args", "headwater.storage.options")


class ConfigError(ValueError):
    """A configuration key is unknown, missing or has a bad value; the message names key and file."""


# --- constraints (scikit-learn's _parameter_constraints, for config paths) ---------------------

@dataclass(frozen=True)
class Interval:
    """A number of ``kind`` (int or float) in [low, high] (a bound of None is open)."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed_low: bool = True
    closed_high: bool = True

    def check(self, value: Any) -> str | None:
        kinds = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            return f"must be {self._describe()}"
        if self.low is not None and (value < self.low or (value == self.low and not self.closed_low)):
            return f"must be {self._describe()}"
        if self.high is not None and (value > self.high or (value == self.high and not self.closed_high)):
            return f"must be {self._describe()}"
        return None

    def _describe(self) -> str:
        name = "an int" if self.kind is int else "a number"
        lo = "-inf" if self.low is None else self.low
        hi = "inf" if self.high is None else self.high
        left = "[" if self.closed_low and self.low is not None else "("
        right = "]" if self.closed_high and self.high is not None else ")"
        return f"{name} in the range {left}{lo}, {hi}{right}"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of strings."""

    values: tuple[str, ...]

    def check(self, value: Any) -> str | None:
        if value not in self.values:
            return "must be one of " + ", ".join(repr(v) for v in self.values)
        return None


@dataclass(frozen=True)
class OfType:
    """A value of the given Python type(s)."""

    kinds: tuple[type, ...]
    description: str

    def check(self, value: Any) -> str | None:
        if isinstance(value, bool) and bool not in self.kinds:
            return f"must be {self.description}"
        return None if isinstance(value, self.kinds) else f"must be {self.description}"


@dataclass(frozen=True)
class ListOf:
    """A non-empty list whose items all satisfy ``item``."""

    item: Any
    allow_empty: bool = False

    def check(self, value: Any) -> str | None:
        if not isinstance(value, list) or (not value and not self.allow_empty):
            return "must be a " + ("" if self.allow_empty else "non-empty ") + "list"
        for v in value:
            problem = self.item.check(v)
            if problem:
                return f"must be a list whose items each {problem.removeprefix('must ')}"
        return None


@dataclass(frozen=True)
class Optional:
    """None, or a value satisfying ``inner``."""

    inner: Any

    def check(self, value: Any) -> str | None:
        if value is None:
            return None
        problem = self.inner.check(value)
        return None if problem is None else f"{problem} or null"


STRING = OfType((str,), "a string")
BOOL = OfType((bool,), "true or false")
STRINGS = ListOf(STRING, allow_empty=True)

# Constraints of the shared (non-app) keys. Apps add theirs through `App.config_constraints`.
CORE_CONSTRAINTS: dict[str, Any] = {
    "headwater.id": OfType((str,), "a string naming the app instance"),
    "headwater.app": OfType((str,), "an app name or 'module:Class'"),
    "headwater.kafka.bootstrap-servers": STRING,
    "headwater.kafka.input-partitions": Interval(int, 1),
    "headwater.kafka.update-partitions": Interval(int, 1, 1),
    "headwater.kafka.max-records-per-trigger": Interval(int, 1),
    "headwater.kafka.max-records-per-split": Interval(int, 1),
    "headwater.kafka.starting-offsets": STRING,
    "headwater.kafka.poll-timeout-ms": Interval(int, 1),
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
    "headwater.speed.trigger-interval-sec": Interval(float, 0),
    "headwater.speed.snapshot-interval-sec": Interval(float, 0, closed_low=False),
    "headwater.serving.host": STRING,
    "headwater.serving.port": Interval(int, 0, 65535),
    "headwater.serving.rescorer": Optional(STRING),
    "headwater.input-schema.feature-names": STRINGS,
    "headwater.input-schema.numeric-features": STRINGS,
    "headwater.input-schema.categorical-features": STRINGS,
    "headwater.input-schema.ignored-features": STRINGS,
    "headwater.input-schema.id-features": STRINGS,
    "headwater.input-schema.target-feature": Optional(STRING),
    "headwater.ml.eval.test-fraction": Interval(float, 0, 1, closed_low=False, closed_high=False),
    "headwater.ml.eval.candidates": Interval(int, 1),
    "headwater.ml.eval.parallelism": Interval(int, 1),
    "headwater.ml.eval.search": Options(("random", "grid")),
    "headwater.ml.eval.threshold": Optional(Interval(float)),
    "headwater.ml.eval.max-regression": Interval(float, 0),
    "headwater.ml.eval.seed": Interval(int, 0),
}


# --- loading -------------------------------------------------------------------------------------

class Config:
    """The merged configuration plus where each value came from (for error messages)."""

    def __init__(self, tree: ConfigTree, layers: Sequence[tuple[str, ConfigTree]]):
        self._tree = tree
        self._layers = list(layers)

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
        for name, layer in reversed(self._layers):
            try:
                layer.get(path)
                return name
            except (ConfigException, KeyError):
                continue
        return str(REFERENCE_CONF)

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

    def with_overrides(self, overrides: Iterable[str]) -> Config:
        """This config with more ``key=value`` overrides, checked like :func:`load_config`'s."""
        return _checked([*self._layers, *(_override_layer(o) for o in overrides)])


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = (),
                constraints: Mapping[str, Any] | None = None) -> Config:
    """Load reference defaults, then ``path``, then ``key=value`` overrides, and validate.

    ``constraints`` defaults to the core constraints plus those of the configured app.
    """
    layers = [(str(REFERENCE_CONF), _parse_file(REFERENCE_CONF))]
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"config file {path} does not exist")
        layers.append((str(path), _parse_file(Path(path))))
    layers.extend(_override_layer(o) for o in overrides)
    return _checked(layers, constraints)


def _checked(layers: Sequence[tuple[str, ConfigTree]], constraints: Mapping[str, Any] | None = None) -> Config:
    config = _merge(layers)
    check_known_keys(config)
    if constraints is None:
        constraints = dict(CORE_CONSTRAINTS)
        app_name = config.get("headwater.app", None)
        if app_name is not None:
            from headwater.apps import load_app  # apps import config: load late
            constraints.update(load_app(app_name, config).config_constraints)
    validate(config, constraints)
    return config


def validate(config: Config, constraints: Mapping[str, Any]) -> None:
    for path, constraint in constraints.items():
        value = config.get(path, None)
        problem = constraint.check(value)
        if problem:
            raise ConfigError(f"{path} {problem} in {config.source_of(path)}, got {value!r}")


def check_known_keys(config: Config) -> None:
    known = set(_leaf_paths(_parse_file(REFERENCE_CONF)))
    known_prefixes = {p.rsplit(".", i)[0] for p in known for i in range(p.count(".") + 1)}
    for name, layer in config._layers[1:]:
        for path in _leaf_paths(layer):
            if path in known or any(path.startswith(s + ".") or path == s for s in OPEN_SECTIONS):
                continue
            if path in known_prefixes:  # e.g. an empty object for a known section
                continue
            raise ConfigError(f"{path} is not a headwater configuration key (in {name})")


def _parse_file(path: Path) -> ConfigTree:
    try:
        if path == REFERENCE_CONF and not path.is_file():
            # headwater imported from a zip (spark-submit --py-files): the file has no path of its own
            from importlib.resources import files

            return ConfigFactory.parse_string(files("headwater").joinpath("reference.conf").read_text())
        return ConfigFactory.parse_file(str(path))
    except Exception as exc:  # pyhocon raises several unrelated types for syntax errors
        raise ConfigError(f"cannot parse {path}: {exc}") from exc


def _override_layer(override: str) -> tuple[str, ConfigTree]:
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} must look like key=value")
    key = key.strip()
    if not key.startswith("headwater."):
        key = "headwater." + key
    try:
        tree = ConfigFactory.parse_string(f"{key} = {value.strip() or 'null'}")
    except Exception:
        tree = ConfigFactory.parse_string(f"{key} = {_quote(value.strip())}")
    return f"-D {override}", tree


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _merge(layers: Sequence[tuple[str, ConfigTree]]) -> Config:
    merged = ConfigTree()
    for _, layer in layers:
        merged = ConfigTree.merge_configs(merged, layer, copy_trees=True)
    return Config(merged, layers)


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
