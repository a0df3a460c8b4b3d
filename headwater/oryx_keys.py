"""Oryx 2's key names in a headwater config: those read as headwater's own, and those headwater does without.

A file or ``-D`` may use Oryx's name of a key whose concept headwater has under another name
(:data:`KEY_ALIASES`); setting both names in one layer is an error. A key of Oryx's that has no
headwater equivalent (:data:`ORYX_ONLY_KEYS`) is refused with the reason, rather than as unknown.
"""
from __future__ import annotations

from pyhocon import ConfigTree
from pyhocon.exceptions import ConfigException

from headwater.constraints import ConfigError

# Oryx's names of keys whose concept headwater has under another name: a file or -D may use either.
KEY_ALIASES = {
    "headwater.ml.eval.hyperparam-search": "headwater.ml.eval.search",
    "headwater.als.logStrength": "headwater.als.log-strength",
    "headwater.als.rescorer-provider-class": "headwater.serving.rescorer",
    "headwater.serving.api.port": "headwater.serving.port",
    "headwater.rdf.hyperparams.min-info-gain-nats": "headwater.rdf.hyperparams.min-info-gain",
}
# Oryx's keys whose concept headwater does without: the error says why instead of "not a key"
ORYX_ONLY_KEYS = {
    "headwater.serving.min-model-load-fraction": "a serving replica swaps in a whole loaded model atomically: it "
                                                 "answers 503 until the first is loaded, never from a partial one",
    "headwater.speed.min-model-load-fraction": "the speed layer starts from a whole champion model",
    "headwater.als.sample-rate": "headwater samples no input; headwater.batch.window trains on recent events",
}


def with_canonical_keys(tree: ConfigTree, name: str) -> ConfigTree:
    """``tree`` (a layer named ``name``) with each of Oryx's key names (:data:`KEY_ALIASES`) moved to headwater's.

    >>> from pyhocon import ConfigFactory
    >>> with_canonical_keys(ConfigFactory.parse_string("headwater.als.logStrength = true"), "-D").get(
    ...     "headwater.als.log-strength")
    True
    """
    present = [alias for alias in KEY_ALIASES if _has(tree, alias)]
    if not present:
        return tree
    tree = tree.copy()
    for alias in present:
        canonical = KEY_ALIASES[alias]
        if _has(tree, canonical):
            raise ConfigError(f"{alias} and {canonical} name the same setting; set one of them (in {name})")
        tree.put(canonical, tree.pop(alias))
    return tree


def _has(tree: ConfigTree, path: str) -> bool:
    try:
        tree.get(path)
    except (ConfigException, KeyError):
        return False
    return True


__all__ = ["KEY_ALIASES", "ORYX_ONLY_KEYS", "with_canonical_keys"]
