"""Shadow traffic: the challenger also answers the reads it does not serve, off the request path, for comparison.

With ``headwater.serving.routing.shadow = true`` and a challenger loaded, each read the champion answered
is put on a bounded queue (``headwater.serving.routing.shadow-queue``) with the champion's answer; when
the queue is full the work is dropped and counted, never waited for. One worker thread asks the
challenger the same question (the same path and query with ``?version=<challenger>``, through the app
itself, so every endpoint is shadowed without code of its own) and compares the two answers:

- rankings (``id,value`` rows): overlap@k, the share of the champion's ids the challenger also returns;
- numbers (estimates, distances, regression predictions): the mean absolute difference;
- anything else (classes, cluster indexes as text): agreement, the share of equal answers.

``/metrics``: ``headwater_shadow_requests{version, outcome}`` (compared, dropped, failed) and
``headwater_shadow_measure{version, measure}`` (the running mean of each comparison). A slow challenger
slows only the worker: the champion's answers are the same bytes, as fast (bench/serving_shadow.py).

>>> compare(b'[{"id":"a","value":1.0},{"id":"b","value":0.5}]', b'[{"id":"b","value":0.9},{"id":"c","value":0.1}]')
('overlap_at_k', 0.5)
>>> compare(b"3.5", b"3.25"), compare(b"yes", b"no")
(('abs_difference', 0.25), ('agreement', 0.0))
"""
from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import dataclass

from flask import Flask, g, request

log = logging.getLogger(__name__)

SHADOW_HEADER = "X-Headwater-Shadow"   # marks the worker's own requests, which are never shadowed again


@dataclass(frozen=True)
class ShadowWork:
    version: int
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    champion_answer: bytes


def _rows(body: bytes) -> list[tuple[str | None, str]]:
    """An answer as (id or None, value) rows, whether it is JSON or CSV."""
    text = body.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if parsed is None:
        lines = [line for line in text.splitlines() if line]
        return [(a, b) if b else (None, a) for a, _, b in (line.partition(",") for line in lines)]
    items = parsed if isinstance(parsed, list) else [parsed]
    return [(str(i["id"]), str(i.get("value"))) if isinstance(i, dict) and "id" in i else (None, str(i))
            for i in items]


def compare(champion: bytes, challenger: bytes) -> tuple[str, float] | None:
    """(measure, value) of two answers to the same request, or None when there is nothing to compare."""
    a, b = _rows(champion), _rows(challenger)
    if not a:
        return None
    if all(key is not None for key, _ in a):
        return "overlap_at_k", len({k for k, _ in a} & {k for k, _ in b}) / len(a)
    try:
        numbers_a, numbers_b = [float(v) for _, v in a], [float(v) for _, v in b]
    except ValueError:
        return "agreement", sum(x == y for (_, x), (_, y) in zip(a, b)) / len(a)
    if len(numbers_a) != len(numbers_b):
        return "agreement", 0.0
    return "abs_difference", sum(abs(x - y) for x, y in zip(numbers_a, numbers_b)) / len(numbers_a)


class Shadow:
    """The queue and the worker of one app."""

    def __init__(self, app: Flask, metrics, capacity: int):
        self.app, self.metrics = app, metrics
        self.work: queue.Queue[ShadowWork] = queue.Queue(capacity)
        self._sums: dict[tuple[int, str], list[float]] = {}
        threading.Thread(target=self._run, name="serving-shadow", daemon=True).start()

    def offer(self, work: ShadowWork) -> None:
        try:
            self.work.put_nowait(work)
        except queue.Full:   # never wait: the champion's answer goes out now
            self.metrics.shadow_requests.labels(str(work.version), "dropped").inc()

    def _run(self) -> None:
        client = self.app.test_client()
        while True:
            work = self.work.get()
            try:
                query = [(k, v) for k, v in work.query if k != "version"] + [("version", str(work.version))]
                answer = client.get(work.path, query_string=query, headers={**work.headers, SHADOW_HEADER: "1"})
                measured = compare(work.champion_answer, answer.get_data()) if answer.status_code == 200 else None
                outcome = "compared" if measured is not None else "failed"
                if measured is not None:
                    total = self._sums.setdefault((work.version, measured[0]), [0.0, 0])
                    total[0] += measured[1]
                    total[1] += 1
                    self.metrics.shadow_measure.labels(str(work.version), measured[0]).set(total[0] / total[1])
            except Exception:  # a failing challenger must not end the worker
                log.debug("shadow request %s failed", work.path, exc_info=True)
                outcome = "failed"
            self.metrics.shadow_requests.labels(str(work.version), outcome).inc()


def init_app(app: Flask, manager, capacity: int) -> Shadow:
    """Offer every successful champion read of the app's endpoints to the challenger's shadow."""
    from serving_layer.loaded_versions import CHALLENGER
    from serving_layer.model_router import UNROUTED

    shadow = Shadow(app, manager.metrics, capacity)

    @app.after_request
    def _offer(response):
        if (request.method != "GET" or response.status_code != 200 or request.headers.get(SHADOW_HEADER)
                or request.blueprint in (None, *UNROUTED) or "headwater_version" in g):
            return response
        version = manager.versions.version_of(CHALLENGER)
        if version is not None:
            headers = {k: v for k, v in request.headers.items() if k in ("Accept", "Authorization", "X-Headwater-Key")}
            shadow.offer(ShadowWork(version, request.script_root + request.path,
                                    list(request.args.items(multi=True)), headers, response.get_data()))
        return response

    return shadow
