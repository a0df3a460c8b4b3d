"""The speed layer's models and its place in both topics, shared by the micro-batch, tail and snapshot threads.

The speed layer learns every input event exactly once into the *live* model (the champion plus
what the speed layer folded), scores each new micro-batch with it and with the *champion alone*
(an untouched copy, the counterfactual) before learning, and remembers two positions:

- ``covered``: ``{partition: next offset}`` of ``<id>.input`` folded into the live model;
- ``update_offset``: the first ``<id>.update`` offset after the last record this process published,
  which a snapshot records so the serving layer resumes from it.

The input topic is the source of truth: a restarted speed layer loads its snapshot and re-folds the
input events the snapshot does not cover but whose UPs it already published (the BATCH records on the
update topic say which), batch by batch as they were first folded, without publishing them again.
One lock orders learning, rebasing and snapshots.

>>> class Counter:                       # a toy app model: counts events, UPs carry the total
...     def __init__(self, n=0): self.n = n
...     def learn_many(self, events): self.n += len(events); return [self.n]
...     def score_many(self, events): return {}
...     def copy(self): return Counter(self.n)
>>> state = ModelState()
>>> state.install(Counter(), Counter(), base_version=1, covered={0: 10})
>>> state.learn(["e1", "e2"], covered={0: 12})
[2]
>>> state.live.n, state.champion.n, state.covered, state.changes
(2, 0, {0: 12}, 1)
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Frozen:
    """What a snapshot registers: an independent copy of the live model and where it stands."""

    model: Any
    base_version: int
    covered: dict[int, int]
    update_offset: int | None
    changes: int


class ModelState:
    """The live model, the champion alone, the base version and the two topic positions."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.live: Any = None
        self.champion: Any = None
        self.base_version: int | None = None
        self.covered: dict[int, int] = {}
        self.update_offset: int | None = None
        self.changes = 0  # micro-batches learned since the last snapshot

    def install(self, live: Any, champion: Any, base_version: int, covered: dict[int, int],
                update_offset: int | None = None) -> None:
        """Replace the models (first load or rebase); ``covered`` is the input the live model reflects."""
        with self.lock:
            self.live, self.champion, self.base_version = live, champion, base_version
            self.covered = dict(covered)
            self.update_offset = update_offset
            self.changes = 0

    def learn(self, batch: Any, covered: dict[int, int]) -> list[Any]:
        """Fold a parsed batch into the live model; the UP payloads. Hold ``lock`` until they are published."""
        with self.lock:
            payloads = self.live.learn_many(batch)
            self.covered.update(covered)
            self.changes += 1
            return payloads

    def score(self, batch: Any) -> dict[str, dict[str, Any]]:
        """``{"live": scores, "champion": scores}`` of a batch before it is learned (prequential)."""
        with self.lock:
            scores = {"live": self.live.score_many(batch)}
            if self.champion is not None:
                scores["champion"] = self.champion.score_many(batch)
            return scores

    def published(self, update_offset: int) -> None:
        """Records up to ``update_offset`` - 1 of the update topic are this process's and acknowledged."""
        with self.lock:
            self.update_offset = update_offset

    def frozen(self) -> Frozen | None:
        """A copy for a snapshot, or None when nothing changed since the last one."""
        with self.lock:
            if self.live is None or self.changes == 0:
                return None
            changes, self.changes = self.changes, 0
            return Frozen(self.live.copy(), self.base_version, dict(self.covered), self.update_offset, changes)

    def unfreeze(self, changes: int) -> None:
        """A snapshot failed: count its changes again so the next one is taken."""
        with self.lock:
            self.changes += changes


__all__ = ["Frozen", "ModelState"]
