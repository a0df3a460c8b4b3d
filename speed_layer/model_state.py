"""The speed layer's copy of the model and its place in the update topic, shared by three threads.

The micro-batch thread learns (and publishes what it learned), the update-topic tail applies other
processes' UPs and installs new champions, the snapshot thread copies. One lock orders them.

Own UPs are applied once, when learned; their records carry this process's key and the
*generation* of the model they were learned on (bumped by every rebase). The tail skips an own
record of the current generation (it is in the model already, and replaying it after newer ones
would briefly roll a vector back) but applies one of an older generation: it was learned on the
previous model yet lies after the MODEL notice on the topic, so the serving layer applies it to
the new champion too, and the two copies stay alike.

>>> class Counter:                       # a toy app model: counts events, UPs carry the total
...     def __init__(self, n=0): self.n = n
...     def learn_many(self, events): self.n += len(events); return [self.n]
...     def apply_update(self, payload): self.n = payload
...     def copy(self): return Counter(self.n)
>>> state = ModelState(owner="speed-a")
>>> state.install(Counter(), base_version=1, position=0)
>>> state.learn(["e1", "e2"])
([2], b'speed-a/0')
>>> state.on_update(offset=0, key=b'speed-a/0', payload=2)    # own, current generation: skipped
>>> state.on_update(offset=1, key=b'speed-b/0', payload=7)    # someone else's: applied
>>> state.model.n, state.position, state.changes
(7, 2, 2)
"""
from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)


class ModelState:
    """The model, the registry version it is based on and the next update-topic offset it reflects."""

    def __init__(self, owner: str):
        self.owner = owner
        self.lock = threading.RLock()
        self.model: Any = None
        self.base_version: int | None = None
        self.position: int | None = None  # every update-topic record before it is reflected
        self.generation = 0  # bumped by each rebase
        self.changes = 0  # UPs learned or applied since the last snapshot

    def install(self, model: Any, base_version: int, position: int | None = None) -> None:
        """Replace the model (first load or rebase); ``position`` None keeps the current one."""
        with self.lock:
            if self.model is not None:
                self.generation += 1
            self.model, self.base_version = model, base_version
            if position is not None:
                self.position = position
            self.changes = 0

    def key(self) -> bytes:
        """The record key of UPs learned now."""
        return f"{self.owner}/{self.generation}".encode()

    def learn(self, batch: Any) -> tuple[list[Any], bytes]:
        """Fold a parsed batch into the model: (UP payloads, their record key). Call under ``lock``
        until they are published, so no rebase slips between learning and publishing."""
        with self.lock:
            payloads = self.model.learn_many(batch)
            self.changes += len(payloads)
            return payloads, self.key()

    def on_update(self, offset: int, key: bytes | None, payload: Any) -> None:
        """An UP record from the update topic (``payload`` None: a record with nothing to apply)."""
        with self.lock:
            if payload is not None and key != self.key():
                try:
                    self.model.apply_update(payload)
                    self.changes += 1
                except (ValueError, TypeError, IndexError, KeyError) as exc:  # a bad message is skipped
                    log.warning("skipping update-topic record at offset %d: %s", offset, exc)
            self.position = offset + 1

    def frozen(self) -> tuple[Any, int | None, int | None, int] | None:
        """(copy of the model, base version, position, changes) for a snapshot; None if nothing changed."""
        with self.lock:
            if self.model is None or self.changes == 0:
                return None
            changes, self.changes = self.changes, 0
            return self.model.copy(), self.base_version, self.position, changes

    def unfreeze(self, changes: int) -> None:
        """A snapshot failed: count its changes again so the next one is taken."""
        with self.lock:
            self.changes += changes


__all__ = ["ModelState"]
