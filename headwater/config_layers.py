"""The HOCON layers of a configuration: the reference files, a ``--conf`` file, ``-D`` overrides, merged.

Each layer keeps its name (a file, or ``-D key``) so that an error can say where a value came from;
:func:`headwater.config.load_config` merges them and checks the result.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from pyhocon import ConfigFactory, ConfigTree

from headwater.api import App
from headwater.config_keys import OPEN_SECTIONS
from headwater.constraints import ConfigError
from headwater.oryx_keys import ORYX_ONLY_KEYS

REFERENCE_CONF = Path(__file__).with_name("reference.conf")

Layer = tuple[str, ConfigTree]


def core_reference() -> ConfigTree:
    if REFERENCE_CONF.is_file():
        return _parse(REFERENCE_CONF.read_text(), str(REFERENCE_CONF))
    # headwater imported from a zip (spark-submit --py-files): the file has no path of its own
    from importlib.resources import files

    return _parse(files("headwater").joinpath("reference.conf").read_text(), "headwater/reference.conf")


def app_reference(app: App) -> Layer:
    name = f"{app.package.replace('.', '/')}/reference.conf"
    tree = _parse(app.reference_conf(), name)
    outside = [p for p in _leaf_paths(tree) if not (p + ".").startswith(app.config_section + ".")]
    if outside:
        raise ConfigError(f"app {app.name!r} declares {outside[0]} in {name}, outside its section "
                          f"{app.config_section}")
    return name, tree


def check_known_keys(layers: Sequence[Layer], references: Sequence[Layer], app: App | None) -> None:
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


def parse_file(path: Path) -> ConfigTree:
    try:
        return ConfigFactory.parse_file(str(path))  # a file's includes resolve relative to it
    except Exception as exc:  # pyhocon raises several unrelated types for syntax errors
        raise ConfigError(f"cannot parse {path}: {exc}") from exc


def _parse(text: str, name: str) -> ConfigTree:
    try:
        return ConfigFactory.parse_string(text)
    except Exception as exc:  # pyhocon raises several unrelated types for syntax errors
        raise ConfigError(f"cannot parse {name}: {exc}") from exc


def override_layer(override: str) -> Layer:
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


def merge(layers: Sequence[Layer]) -> ConfigTree:
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

