"""Concurrent top-N queries against one item matrix answered together: one pass over the matrix per group.

Scoring a million items is a memory-bound pass over 200 MB (bench/serving_als.py: 1M × 50 float32);
each request making its own pass means concurrent requests queue for memory bandwidth, so 4 clients
took twice the latency of one. Here a request joins the open *group* for its matrix. One group is
computed at a time, by all its members together, block of rows by block of rows (each member takes
the next block, so a group uses as many cores as it has members); the leader of the next group and
anyone joining it help the running group finish instead of waiting idle, and the next group closes
when the running one is done (or, with no running group, after at most ``wait_sec`` while other
requests are in flight). A lone request never waits.

Each block's scores ``block @ Qᵀ`` stay in a small per-thread buffer: every query's per-item
``transform`` (cosine, an additive item term, a rescorer: called with the block's rows) is applied
there and only the block's scores at or above the query's running threshold (its ``keep``-th best so
far) leave it. No query ever holds a score per item: a full float32 row is 4 MB per request at 1M
items, and a group's rows would have cost a third of the factor bytes again (RSS budget: 2x).

The one-column product is padded to two: BLAS answers a single column with a different kernel
(gemv) whose float32 rounding differs in the last bit, and with two columns or more a query's scores
do not depend on its partners or its position, so grouped and single queries get bit-identical
answers. Ties rank by row, as a stable sort of all scores would.

>>> groups = ScoreGroups()
>>> matrix = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=np.float32)
>>> rows, scores = groups.best(matrix, np.array([3.0, 1.0], dtype=np.float32), keep=2)
>>> rows.tolist(), scores.tolist()
([2, 0], [4.0, 3.0])
"""
from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable

import numpy as np

# A block's scores (1 MB at 8 queries) stay in cache for the selection; BLAS gets it in slices:
# 1M × 50 took 8.8 ms in slices of 4096 rows and 29 ms in slices of 32768 (one thread).
BLOCK_ROWS = 32768
PRODUCT_ROWS = 4096

# (first row, end row, the block's float32 scores of one query) -> new scores for those rows
Transform = Callable[[int, int, np.ndarray], np.ndarray]


class _Query:
    __slots__ = ("vector", "keep", "transform")

    def __init__(self, vector: np.ndarray, keep: int, transform: Transform | None):
        self.vector, self.keep, self.transform = vector, keep, transform


class _Group:
    __slots__ = ("matrix", "queries", "full", "started", "done", "error", "columns", "blocks", "next_block",
                 "finished", "progress", "found")

    def __init__(self, matrix: np.ndarray):
        self.matrix = matrix
        self.queries: list[_Query] = []
        self.full = threading.Event()
        self.started = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.columns: np.ndarray | None = None
        self.blocks = 0
        self.next_block = itertools.count()  # next() is atomic: members claim blocks without a lock
        self.finished = 0
        self.progress = threading.Lock()
        self.found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (rows, query slots, scores)


class ScoreGroups:
    """Groups concurrent top-N queries over one matrix; ``max_queries`` bounds a group."""

    def __init__(self, max_queries: int = 8, wait_sec: float = 0.001):
        self.max_queries = max_queries
        self.wait_sec = wait_sec
        self._lock = threading.Lock()
        self._open: _Group | None = None
        self._running: _Group | None = None
        self._in_flight = 0
        self._block_scores = threading.local()
        # More threads computing blocks than cores only thrash the caches: 8 in-process clients got
        # 211 q/s with every member computing, fewer than 4 clients (246 q/s)
        self._workers = threading.BoundedSemaphore(os.cpu_count() or 2)
        self.products = 0  # groups computed, for tests and metrics

    def best(self, matrix: np.ndarray, query, keep: int,
             transform: Transform | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the ``keep`` best rows of ``matrix @ query`` (after ``transform``), best first.

        Non-finite scores (a rescorer's NaN is -inf here) may fill the end when fewer are finite.
        """
        query = _Query(np.asarray(query, dtype=np.float32), max(1, keep), transform)
        with self._lock:
            self._in_flight += 1
            group = self._open
            leader = group is None or group.matrix is not matrix
            if leader:
                group = self._open = _Group(matrix)
            slot = len(group.queries)
            group.queries.append(query)
            if len(group.queries) >= self.max_queries:
                self._open = None
                group.full.set()
        try:
            if leader:
                self._start(group)
            else:
                self._help_until(group.started)
            if group.error is None:
                self._work(group)
            group.done.wait()
            if group.error is not None:
                raise group.error
            return _merge(group.found, slot, query.keep)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _help_until(self, event: threading.Event) -> None:
        """Work on the running group's blocks until ``event`` is set."""
        while not event.is_set():
            running = self._running
            if running is None or running.error is not None:
                event.wait(self.wait_sec)
            else:
                self._work(running)
                running.done.wait(self.wait_sec)

    def _start(self, group: _Group) -> None:
        try:
            while True:
                with self._lock:
                    running = self._running
                    if running is None:
                        self._running = group
                        wait = self._in_flight > len(group.queries)
                        break
                self._work(running)  # later requests keep joining this group meanwhile
                running.done.wait()
            if wait:
                group.full.wait(self.wait_sec)
            with self._lock:
                if self._open is group:
                    self._open = None
                self.products += 1
            vectors = [q.vector for q in group.queries]
            if len(vectors) == 1:
                vectors.append(np.zeros_like(vectors[0]))
            group.columns = np.ascontiguousarray(np.stack(vectors).T)
            group.blocks = -(-len(group.matrix) // BLOCK_ROWS)
            if group.blocks == 0:
                self._finish(group)
        except BaseException as exc:  # members re-raise it in their own request
            self._finish(group, exc)
        finally:
            group.started.set()

    def _work(self, group: _Group) -> None:
        """Score blocks of the group until none is left; keep each query's candidates of this thread's blocks."""
        group.started.wait()  # a running group's leader may still be preparing it
        if group.error is not None:
            return
        with self._workers:  # never held while waiting for anything else: no deadlock
            self._compute_blocks(group)

    def _compute_blocks(self, group: _Group) -> None:
        try:
            matrix, columns, queries = group.matrix, group.columns, group.queries
            width = len(queries)
            keeps = np.array([q.keep for q in queries])
            thresholds = np.full(width, -np.inf, dtype=np.float32)
            found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
            pooled = 0
            flat = getattr(self._block_scores, "buffer", None)
            if flat is None or len(flat) < BLOCK_ROWS * columns.shape[1]:
                flat = self._block_scores.buffer = np.empty(BLOCK_ROWS * max(columns.shape[1], self.max_queries),
                                                            dtype=np.float32)
            while (index := next(group.next_block)) < group.blocks:
                low = index * BLOCK_ROWS
                high = min(low + BLOCK_ROWS, len(matrix))
                block = flat[:(high - low) * columns.shape[1]].reshape(high - low, columns.shape[1])
                for start in range(0, high - low, PRODUCT_ROWS):
                    stop = min(start + PRODUCT_ROWS, high - low)
                    np.matmul(matrix[low + start:low + stop], columns, out=block[start:stop])
                scores = block[:, :width]
                for slot, query in enumerate(queries):
                    if query.transform is not None:
                        scores[:, slot] = query.transform(low, high, scores[:, slot])
                if not found:
                    # a first bound from this block: its keep-th best is at most the true keep-th best
                    kth = max(0, len(scores) - int(keeps.max()))
                    thresholds = np.maximum(thresholds, np.partition(scores, kth, axis=0)[kth])
                # every score at or above the bound might rank; -inf (filtered out) never does
                candidates = scores >= thresholds
                if not np.isfinite(thresholds).all():
                    candidates &= scores > -np.inf
                rows, slots = np.divmod(np.flatnonzero(candidates), width)  # 1-D: 2-D nonzero took 0.13 ms
                found.append((rows + low, slots, scores[rows, slots]))
                pooled += len(rows)
                if pooled > 4 * int(keeps.sum()) + 1024:
                    merged = _concatenate(found)
                    thresholds = np.maximum(thresholds, _kth_best(merged, keeps))
                    found = [_above(merged, thresholds)]
                    pooled = len(found[0][0])
                with group.progress:
                    group.finished += 1
                    last = group.finished == group.blocks
                if last:
                    self._publish(group, found)
                    self._finish(group)
                    return
            self._publish(group, found)
        except BaseException as exc:
            self._finish(group, exc)

    @staticmethod
    def _publish(group: _Group, found) -> None:
        if found:
            with group.progress:
                group.found.append(_concatenate(found))

    def _finish(self, group: _Group, error: BaseException | None = None) -> None:
        """Mark the group computed (or failed) and let the next group run, once."""
        with group.progress:
            if group.done.is_set():
                return
            group.error = error
            group.done.set()
        with self._lock:
            if self._running is group:
                self._running = None


def _concatenate(found):
    return tuple(np.concatenate(parts) for parts in zip(*found))


def _kth_best(found, keeps: np.ndarray) -> np.ndarray:
    """Per query slot, its keep-th best score among ``found`` (-inf with fewer)."""
    rows, slots, scores = found
    bounds = np.full(len(keeps), -np.inf, dtype=np.float32)
    for slot, keep in enumerate(keeps):
        mine = scores[slots == slot]
        if len(mine) >= keep:
            bounds[slot] = np.partition(mine, len(mine) - keep)[len(mine) - keep]
    return bounds


def _above(found, thresholds: np.ndarray):
    rows, slots, scores = found
    kept = scores >= thresholds[slots]
    return rows[kept], slots[kept], scores[kept]


def _merge(found, slot: int, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """One query's best ``keep`` (rows, scores) over every thread's candidates: by score, ties by row."""
    rows = np.concatenate([r[s == slot] for r, s, _ in found]) if found else np.zeros(0, dtype=np.intp)
    scores = np.concatenate([v[s == slot] for _, s, v in found]) if found else np.zeros(0, dtype=np.float32)
    order = np.lexsort((rows, -scores))[:keep]
    return rows[order], scores[order]


__all__ = ["BLOCK_ROWS", "ScoreGroups", "Transform"]
