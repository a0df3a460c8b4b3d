"""The model versions a replica holds besides its champion: the previous champion and the challenger.

At most ``headwater.serving.max-loaded-versions`` models are in memory, the champion included. When
the bound is reached the oldest previous champion goes first; a challenger goes only to make room for
a newer challenger. Each version keeps its own model (and so its own UPs: the manager applies a UP
only to the version it was computed on). :func:`approximate_bytes` estimates what each one holds, for
``/metrics``.

>>> import numpy as np
>>> held = LoadedVersions(max_loaded=3)
>>> held.keep(4, "previous", "model-4"); held.keep(5, "previous", "model-5"); held.keep(7, "challenger", "m7")
>>> sorted(held.roles().items())      # the champion takes one place: v4 went first
[(5, 'previous'), (7, 'challenger')]
>>> held.get(5), held.get(4)
('model-5', None)
>>> approximate_bytes({"x": np.zeros(1000)}) >= 8000
True
"""
from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np

PREVIOUS, CHALLENGER = "previous", "challenger"
# Containers longer than this are sized from a sample of their elements.
_SAMPLE = 64


class LoadedVersions:
    """Version -> (role, model) for the non-champion versions, bounded; safe to read from any thread."""

    def __init__(self, max_loaded: int = 3):
        self.max_loaded = max_loaded
        self._held: dict[int, tuple[str, Any]] = {}   # insertion order: the oldest first
        self._lock = threading.Lock()

    def keep(self, version: int, role: str, model: Any) -> None:
        """Hold ``model`` as ``version`` (replacing what that version or, for a challenger, the old one was)."""
        with self._lock:
            self._held.pop(version, None)
            if role == CHALLENGER:
                for old in [v for v, (r, _) in self._held.items() if r == CHALLENGER]:
                    del self._held[old]
            self._held[version] = (role, model)
            while len(self._held) > self.max_loaded - 1:
                previous = [v for v, (r, _) in self._held.items() if r == PREVIOUS and v != version]
                del self._held[previous[0] if previous else next(iter(self._held))]

    def drop(self, version: int | None) -> None:
        with self._lock:
            self._held.pop(version, None)

    def get(self, version: int) -> Any:
        held = self._held.get(version)
        return None if held is None else held[1]

    def version_of(self, role: str) -> int | None:
        return next((v for v, (r, _) in list(self._held.items()) if r == role), None)

    def roles(self) -> dict[int, str]:
        return {v: r for v, (r, _) in list(self._held.items())}

    def items(self) -> list[tuple[int, Any]]:
        return [(v, m) for v, (_, m) in list(self._held.items())]


def approximate_bytes(obj: Any, depth: int = 6, seen: set[int] | None = None) -> int:
    """Memory held by ``obj``: numpy buffers exactly, containers and objects by their sizes (sampled when long)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth < 0:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes) if obj.base is None or id(obj.base) not in seen else 0
    size = sys.getsizeof(obj)
    if isinstance(obj, (str, bytes, int, float, bool, type(None))):
        return size
    if isinstance(obj, dict):
        elements = list(obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        elements = list(obj)
    else:
        elements = list(getattr(obj, "__dict__", {}).values()) + [
            getattr(obj, name) for name in getattr(type(obj), "__slots__", ()) if hasattr(obj, name)]
    if len(elements) > _SAMPLE:
        step = len(elements) / _SAMPLE
        sample = [elements[int(i * step)] for i in range(_SAMPLE)]
        return size + int(sum(approximate_bytes(e, depth - 1, seen) for e in sample) * step)
    return size + sum(approximate_bytes(e, depth - 1, seen) for e in elements)
