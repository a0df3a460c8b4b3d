"""Layered HOCON configuration: reference defaults, the app's own reference, a `--conf` file, `-D` overrides.

The core's ``reference.conf`` declares the framework's keys; the app that ``headwater.app`` names brings
its own ``reference.conf`` for its section (``headwater.als`` and so on) and its constraints. Every key
must be declared by one of the two (except under the open sections), and every constraint is checked
once at start-up, so a typo or a bad value stops the process with the key's full path and the file that
set it. The core's keys and their constraints are in :mod:`headwater.config_keys`, the reading and
merging of the layers in :mod:`headwater.config_layers`.

>>> cfg = load_config(overrides=["headwater.id=demo", "headwater.app=als"])
>>> cfg.get("headwater.kafka.input-partitions"), cfg.get("headwater.als.implicit")
(4, True)
>>> cfg.input_topic, cfg.update_topic, cfg.app.name
('demo.input', 'demo.update', 'als')
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from pyhocon import ConfigTree
from pyhocon.exceptions import ConfigException

from headwater.api import App
from headwater.apps import find_app
from headwater.config_keys import CORE_CONSTRAINTS, is_secret
from headwater.config_layers import (
    REFERENCE_CONF,
    Layer,
    app_reference,
    check_known_keys,
    core_reference,
    merge,
    override_layer,
    parse_file,
)
from headwater.constraints import ConfigError, validate
from headwater.kafka_settings import KafkaSettings
from headwater.oryx_keys import with_canonical_keys


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
        return _checked([*self._layers, *(override_layer(o) for o in overrides)])


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
        layers.append((str(path), parse_file(Path(path))))
    layers.extend(override_layer(o) for o in overrides)
    return _checked(layers)


def _checked(layers: Sequence[Layer]) -> Config:
    layers = [(name, with_canonical_keys(tree, name)) for name, tree in layers]
    core = (str(REFERENCE_CONF), core_reference())
    app_name = merge([core, *layers]).get("headwater.app", None)
    app = find_app(app_name) if app_name is not None else None
    references = [core]
    constraints = dict(CORE_CONSTRAINTS)
    if app is not None:
        references.append(app_reference(app))
        constraints.update(app.constraints)
    tree = merge([*references, *layers])
    config = Config(tree, layers, references)
    check_known_keys(layers, references, app)
    validate(lambda p: config.get(p, None), config.source_of, constraints, is_secret)
    return config



def _plain(value: Any) -> Any:
    if isinstance(value, ConfigTree):
        return {k.strip('"'): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if type(value).__name__ == "NoneValue":
        return None
    return value


__all__ = ["OVERRIDES_ENV", "Config", "ConfigError", "load_config", "overrides_from_environment"]
