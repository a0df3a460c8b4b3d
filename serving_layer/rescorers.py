"""Rescorers as Oryx's ``RescorerProvider``: a hook per use, each giving a rescorer with ``rescore`` and
``is_filtered``; several providers chained; the plain callable of ``headwater.serving.rescorer`` kept as a
shorthand.

``headwater.serving.rescorer`` (Oryx's ``oryx.als.rescorer-provider-class``, read as this key) is a
comma-separated list of ``package.module:name``. Each name is

- a provider class (instantiated once, with no arguments) or instance: any of the hooks of
  :class:`RescorerProvider`, each called per request with the request's ``rescorerParams`` as ``args``
  and returning a :class:`Rescorer` or None (no rescoring for that use);
- or a plain callable ``f(user, ids, scores, params) -> scores`` (NaN drops an item), the shorthand:
  it rescores /recommend* (``user`` the user ID, a list of them, or None for an anonymous user),
  /similarity and filters /mostPopularItems, as before.

Several providers combine as Oryx's ``MultiRescorerProvider``: an item filtered by any is dropped, and
the scores pass through each rescorer in turn (a NaN drops the item). Where the ranking's scoring site
needs a vectorised ``(ids, scores) -> scores`` hook, :func:`hook` makes one; a rescorer with a
``rescore_many(ids, scores)`` method is called with whole arrays, others item by item.

>>> class Boost(RescorerProvider):
...     def recommend(self, user_ids, args):
...         return ItemRescorer(lambda i, s: s + float(args[0]), lambda i: i == "b")
>>> provider = combined([Boost()])
>>> rescore = hook(provider.recommend(["u1"], ["10"]))
>>> rescore(np.array(["a", "b"], dtype=object), np.array([1.0, 2.0])).tolist()
[11.0, nan]
>>> provider.most_popular_items([]) is None
True
"""
from __future__ import annotations

import inspect
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from headwater.config import Config, ConfigError

HOOKS = ("recommend", "recommend_to_anonymous", "most_popular_items", "most_active_users", "most_similar_items")
Hook = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Rescorer(Protocol):
    def rescore(self, id: str, score: float) -> float:
        """The new score; NaN drops the item."""

    def is_filtered(self, id: str) -> bool:
        """True to drop the item before it is scored."""


@dataclass(frozen=True)
class ItemRescorer:
    """A rescorer from two functions (either may be None: keep the score, filter nothing)."""

    rescore_fn: Callable[[str, float], float] | None = None
    filter_fn: Callable[[str], bool] | None = None

    def rescore(self, id: str, score: float) -> float:
        return score if self.rescore_fn is None else self.rescore_fn(id, score)

    def is_filtered(self, id: str) -> bool:
        return self.filter_fn is not None and bool(self.filter_fn(id))


class RescorerProvider:
    """Oryx's ``AbstractRescorerProvider``: every hook returns None (no rescoring); override the ones you need."""

    def recommend(self, user_ids: list[str], args: list[str]) -> Rescorer | None:
        return None

    def recommend_to_anonymous(self, item_ids: list[str], args: list[str]) -> Rescorer | None:
        return None

    def most_popular_items(self, args: list[str]) -> Rescorer | None:
        """Only ``is_filtered`` has effect (the counts are not rescored), as in Oryx."""
        return None

    def most_active_users(self, args: list[str]) -> Rescorer | None:
        """Only ``is_filtered`` (of user IDs) has effect, as in Oryx."""
        return None

    def most_similar_items(self, args: list[str]) -> Rescorer | None:
        return None


@dataclass(frozen=True)
class _Chain:
    """Oryx's ``MultiRescorer``: filtered by any, rescored by each in turn until a NaN (see :func:`hook`)."""

    rescorers: tuple[Any, ...]


class _Combined(RescorerProvider):
    """Oryx's ``MultiRescorerProvider`` over providers that may implement only some hooks."""

    def __init__(self, providers: Sequence[Any]):
        self.providers = list(providers)

    def _chain(self, hook_name: str, *args) -> Rescorer | None:
        rescorers = [r for p in self.providers if hasattr(p, hook_name)
                     for r in [getattr(p, hook_name)(*args)] if r is not None]
        if not rescorers:
            return None
        return rescorers[0] if len(rescorers) == 1 else _Chain(tuple(rescorers))

    def recommend(self, user_ids, args):
        return self._chain("recommend", user_ids, args)

    def recommend_to_anonymous(self, item_ids, args):
        return self._chain("recommend_to_anonymous", item_ids, args)

    def most_popular_items(self, args):
        return self._chain("most_popular_items", args)

    def most_active_users(self, args):
        return self._chain("most_active_users", args)

    def most_similar_items(self, args):
        return self._chain("most_similar_items", args)


class _Bound:
    """The shorthand's callable bound to one request's user and params: a vectorised rescorer."""

    def __init__(self, function: Callable, user, params: list[str]):
        self.function, self.user, self.params = function, user, params

    def rescore_many(self, ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return np.asarray(self.function(self.user, ids, scores, self.params), dtype=np.float64)


class CallableProvider(RescorerProvider):
    """The shorthand ``f(user, ids, scores, params)`` as a provider (see the module docstring)."""

    def __init__(self, function: Callable):
        self.function = function

    def recommend(self, user_ids, args):
        return _Bound(self.function, user_ids[0] if len(user_ids) == 1 else list(user_ids), args)

    def recommend_to_anonymous(self, item_ids, args):
        return _Bound(self.function, None, args)

    def most_popular_items(self, args):
        return _Bound(self.function, None, args)

    def most_similar_items(self, args):
        return _Bound(self.function, None, args)


def combined(providers: Sequence[Any]) -> RescorerProvider:
    """Providers chained as Oryx's ``MultiRescorerProvider`` (each may implement only some hooks)."""
    return _Combined(providers)


def _links(rescorer) -> tuple[Any, ...]:
    return rescorer.rescorers if isinstance(rescorer, _Chain) else (rescorer,)


def _rescored(rescorer, ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """One rescorer over arrays: ``rescore_many`` if it has one, else ``is_filtered`` / ``rescore`` per item
    (either may be missing)."""
    many = getattr(rescorer, "rescore_many", None)
    if many is not None:
        return np.asarray(many(ids, scores), dtype=np.float64)
    filtered, rescore = getattr(rescorer, "is_filtered", None), getattr(rescorer, "rescore", None)
    return np.array([np.nan if filtered is not None and filtered(i) else (rescore(i, s) if rescore else s)
                     for i, s in zip(ids.tolist(), scores.tolist())], dtype=np.float64)


def hook(rescorer: Rescorer | None) -> Hook | None:
    """The scoring site's ``(ids, scores) -> scores`` for a rescorer or chain (NaN drops an item), or None."""
    if rescorer is None:
        return None
    links = _links(rescorer)

    def rescore(ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        scores = np.array(scores, dtype=np.float64)
        for link in links:  # a dropped item goes to no later rescorer, as Oryx's MultiRescorer
            live = ~np.isnan(scores)
            if not live.any():
                break
            scores[live] = _rescored(link, ids[live], scores[live])
        return scores

    return rescore


def kept(rescorer: Rescorer | None, ids: Sequence[str]) -> list[bool]:
    """Which ``ids`` a count-ranking keeps: all but the filtered (a rescorer's scores have no effect there);
    the shorthand callable filters with a NaN score, as it did before providers."""
    keep = np.ones(len(ids), dtype=bool)
    for link in (_links(rescorer) if rescorer is not None else ()):
        if isinstance(link, _Bound):
            keep &= np.isfinite(link.rescore_many(np.array(ids, dtype=object), np.ones(len(ids))))
        elif callable(filtered := getattr(link, "is_filtered", None)):
            keep &= np.array([not filtered(i) for i in ids], dtype=bool)
    return keep.tolist()


def load_provider(config: Config) -> RescorerProvider | None:
    """The providers ``headwater.serving.rescorer`` names, combined; imported once at start-up."""
    names = [n.strip() for n in (config.get("headwater.serving.rescorer", None) or "").split(",") if n.strip()]
    if not names:
        return None
    return combined([_load_one(name, config) for name in names])


def _load_one(name: str, config: Config):
    where = config.source_of("headwater.serving.rescorer")
    try:
        if ":" not in name:
            raise ImportError("expected 'package.module:name'")
        target = pkgutil.resolve_name(name)
        provider = target() if inspect.isclass(target) else target
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        raise ConfigError(f"headwater.serving.rescorer {name!r} in {where} cannot be imported: {exc}") from None
    if any(callable(getattr(provider, h, None)) for h in HOOKS):
        return provider
    if callable(provider):
        return CallableProvider(provider)
    raise ConfigError(f"headwater.serving.rescorer {name!r} in {where} is neither a rescorer provider (methods "
                      f"{', '.join(HOOKS)}) nor a callable")


__all__ = ["HOOKS", "CallableProvider", "ItemRescorer", "Rescorer", "RescorerProvider", "combined", "hook", "kept",
           "load_provider"]
