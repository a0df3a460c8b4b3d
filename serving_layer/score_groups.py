"""Concurrent queries against one item matrix scored together: one matrix product reads the matrix once.

Scoring a million items is a memory-bound pass over 200 MB (bench/serving_als.py: 1M × 50 float32);
each request making its own pass means concurrent requests queue for memory bandwidth, so 4 clients
took twice the latency of one. Here a request joins the open *group* for its matrix. One group is
computed at a time, by all its members together, block of rows by block of rows (each member takes
the next block, so a group uses as many cores as it has members); the leader of the next group and
anyone joining it help the running group finish instead of waiting idle, and the next group closes
when the running one is done (or, with no running group, after at most ``wait_sec`` while other
requests are in flight). A lone request never waits.

Blocks of ``matrix @ Qᵀ`` (the tall-skinny product BLAS streams well; ``Q @ matrixᵀ`` with a
million columns ran 3x slower) are transposed into one contiguous row per query while still in
cache. A lone query is padded with a zero column: BLAS answers a one-column product with a
different kernel (gemv) whose float32 rounding differs in the last bit, and with two columns or
more a query's scores do not depend on its partners or its position, so grouped and single
scoring return bit-identical scores.

>>> groups = ScoreGroups()
>>> matrix = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
>>> with groups.scores(matrix, np.array([3.0, 1.0], dtype=np.float32)) as row:
...     row.tolist()
[3.0, 2.0]
"""
from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager

import numpy as np

GROWTH = 1.5
BLOCK_ROWS = 8192  # a block of 1M × 50 float32 is 1.6 MB: it and its scores stay in cache


class _Group:
    __slots__ = ("matrix", "queries", "full", "started", "done", "scores", "error", "readers", "buffer",
                 "columns", "blocks", "next_block", "finished", "progress")

    def __init__(self, matrix: np.ndarray):
        self.matrix = matrix
        self.queries: list[np.ndarray] = []
        self.full = threading.Event()
        self.started = threading.Event()
        self.done = threading.Event()
        self.scores: np.ndarray | None = None
        self.error: BaseException | None = None
        self.readers = 0
        self.buffer: np.ndarray | None = None
        self.columns: np.ndarray | None = None
        self.blocks = 0
        self.next_block = itertools.count()  # next() is atomic: members claim blocks without a lock
        self.finished = 0
        self.progress = threading.Lock()


class ScoreGroups:
    """Groups concurrent ``matrix @ query`` products; each caller gets a private, writable row.

    ``max_queries`` bounds a group (and so its score buffer: ``max_queries × rows`` float32).
    """

    def __init__(self, max_queries: int = 8, wait_sec: float = 0.001):
        self.max_queries = max_queries
        self.wait_sec = wait_sec
        self._lock = threading.Lock()
        self._open: _Group | None = None
        self._running: _Group | None = None
        self._in_flight = 0
        # Reused flat buffers (one group computing, one forming, one still being read): a fresh
        # multi-MB array per request made glibc keep ~80 MB of freed heap across the server's threads.
        self._free: list[np.ndarray] = []
        self._block_scores = threading.local()
        self.products = 0  # groups computed, for tests and metrics

    @contextmanager
    def scores(self, matrix: np.ndarray, query: np.ndarray):
        """This query's row of ``matrix @ query`` (float32), valid inside the ``with`` block."""
        query = np.asarray(query, dtype=np.float32)
        with self._lock:
            self._in_flight += 1
            group = self._open
            leader = group is None or group.matrix is not matrix
            if leader:
                group = self._open = _Group(matrix)
            slot = len(group.queries)
            group.queries.append(query)
            group.readers += 1
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
            yield group.scores[slot]
        finally:
            self._release(group)

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
            queries = np.stack(group.queries)
            columns = queries if len(queries) > 1 else np.vstack([queries, np.zeros_like(queries)])
            group.columns = np.ascontiguousarray(columns.T)
            rows = len(group.matrix)
            group.buffer = self._borrow(len(queries) * rows)
            group.scores = group.buffer[:len(queries) * rows].reshape(len(queries), rows)
            group.blocks = -(-rows // BLOCK_ROWS)
            if group.blocks == 0:
                self._finish(group)
        except BaseException as exc:  # members re-raise it in their own request
            self._finish(group, exc)
        finally:
            group.started.set()

    def _work(self, group: _Group) -> None:
        """Compute blocks of the group's product until none is left."""
        group.started.wait()  # a running group's leader may still be preparing it
        if group.error is not None:
            return
        try:
            matrix, columns, scores, width = group.matrix, group.columns, group.scores, len(group.queries)
            flat = getattr(self._block_scores, "buffer", None)
            if flat is None or len(flat) < BLOCK_ROWS * columns.shape[1]:
                flat = self._block_scores.buffer = np.empty(BLOCK_ROWS * max(columns.shape[1], self.max_queries),
                                                            dtype=np.float32)
            while (index := next(group.next_block)) < group.blocks:
                low = index * BLOCK_ROWS
                high = min(low + BLOCK_ROWS, len(matrix))
                block = flat[:(high - low) * columns.shape[1]].reshape(high - low, columns.shape[1])
                np.matmul(matrix[low:high], columns, out=block)
                scores[:, low:high] = block[:, :width].T
                with group.progress:
                    group.finished += 1
                    last = group.finished == group.blocks
                if last:
                    self._finish(group)
        except BaseException as exc:
            self._finish(group, exc)

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

    def _borrow(self, size: int) -> np.ndarray:
        with self._lock:
            buffer = self._free.pop() if self._free else np.empty(0, dtype=np.float32)
        return buffer if len(buffer) >= size else np.empty(int(size * GROWTH) + 16, dtype=np.float32)

    def _release(self, group: _Group) -> None:
        with self._lock:
            self._in_flight -= 1
            group.readers -= 1
            if group.readers == 0 and group.buffer is not None:
                if len(self._free) < 3:
                    self._free.append(group.buffer)
                group.buffer = group.scores = None


__all__ = ["ScoreGroups"]
