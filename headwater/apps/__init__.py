"""Finding apps: by name among the ``headwater.apps`` entry points, or by ``"package.module:APP"``.

The built-in apps (``als``, ``kmeans``, ``rdf-classification``, ``rdf-regression``) are registered as
entry points exactly like a plug-in app. Where headwater runs without its installed metadata (a zip
shipped with ``spark-submit --py-files``), the App objects of this package's subpackages stand in.

>>> sorted(available_apps())
['als', 'kmeans', 'rdf-classification', 'rdf-regression']
>>> find_app("kmeans").batch
'batch_layer.kmeans:KMeansUpdate'
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from importlib.metadata import entry_points

from headwater.api import App
from headwater.constraints import ConfigError

ENTRY_POINT_GROUP = "headwater.apps"


@cache
def available_apps() -> dict[str, str]:
    """App name -> ``"module:attribute"`` of its App object."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if found:
        return found
    for info in pkgutil.iter_modules(__path__, f"{__name__}."):
        module = importlib.import_module(info.name)
        found.update({value.name: f"{info.name}:{attribute}" for attribute, value in vars(module).items()
                      if isinstance(value, App)})
    return found


def find_app(name: str) -> App:
    """The App a config's ``headwater.app`` names; a ConfigError says what is wrong and what exists."""
    known = available_apps()
    target = known.get(name, name)
    if ":" not in target:
        raise ConfigError(f"headwater.app must be one of {', '.join(sorted(known))} or 'package.module:APP', "
                          f"got {name!r}")
    try:
        app = pkgutil.resolve_name(target)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"headwater.app {name!r} cannot be imported: {exc}") from None
    if not isinstance(app, App):
        raise ConfigError(f"headwater.app {name!r} is not a headwater.api.App (got {type(app).__name__})")
    return app


__all__ = ["ENTRY_POINT_GROUP", "available_apps", "find_app"]
