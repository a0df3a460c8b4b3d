"""Messages on the ``<id>.update`` topic: one encoder and one decoder for every app.

A message is a JSON object with a ``type``: ``MODEL`` announces a newly registered model version
(models never travel over Kafka, only this notice), ``UP`` carries an app-specific incremental
update (encoded and decoded by the app's ``updates`` module) and, when known, the registry version
of the model it was computed on (``base``), and ``BATCH`` closes one speed-layer micro-batch: the
``<id>.input`` offsets its UPs cover (so a restarted speed layer knows what it already published),
its prequential scores, and the versions learning beside the champion (their rollout tests). A
record that is not a valid message decodes to ``None`` so callers log and skip it.

>>> raw = encode_up(["X", "u1", [0.5, 1.0], ["i1"]], base_version=3)
>>> decode_update(raw)
UpdateMessage(type=<MessageType.UP: 'UP'>, payload=['X', 'u1', [0.5, 1.0], ['i1']], base_version=3)
>>> batch = decode_update(encode_batch(BatchRecord(3, {0: 120, 1: 98}, 218, {"live": {"error": [20.0, 218.0]}})))
>>> batch.type, batch.payload.input_offsets, batch.payload.scores["live"]["error"]
(<MessageType.BATCH: 'BATCH'>, {0: 120, 1: 98}, [20.0, 218.0])
>>> decode_update(b"not json") is None, decode_update(b'{"type": "MODEL", "model_name": "m", "version": 1e999}')
(True, None)
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from headwater.registry import CHAMPION

log = logging.getLogger(__name__)


class MessageType(str, Enum):
    MODEL = "MODEL"
    UP = "UP"
    BATCH = "BATCH"


@dataclass(frozen=True)
class ModelNotice:
    """A new model version is in the registry (and its alias points at it)."""

    model_name: str
    version: int
    delta_version: int | None
    alias: str = CHAMPION
    produced_at_ms: int = 0


@dataclass(frozen=True)
class BatchRecord:
    """One folded micro-batch: what it covers in ``<id>.input`` and how each model scored it before learning.

    ``input_offsets`` is ``{partition: next offset}`` after the batch; ``scores`` is
    ``{model: {loss: [sum, count]}}`` for the models scored ("live": batch + speed, "champion": the
    champion alone), so means can be merged over batches.
    """

    base_version: int
    input_offsets: dict[int, int]
    events: int
    scores: dict[str, dict[str, list[float]]]
    produced_at_ms: int = 0
    drift: dict | None = None   # the drift report of the input window this batch closed (speed_layer.drift_watch)
    # the versions learning beside the champion after this batch, with their sequential tests (speed_layer.rollout)
    rollout: list | None = None


@dataclass(frozen=True)
class UpdateMessage:
    type: MessageType
    payload: Any
    base_version: int | None = None


def encode_model_notice(notice: ModelNotice) -> bytes:
    body = {
        "type": MessageType.MODEL.value,
        "model_name": notice.model_name,
        "version": int(notice.version),
        "delta_version": notice.delta_version,
        "alias": notice.alias,
        "produced_at_ms": notice.produced_at_ms or int(time.time() * 1000),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def encode_up(payload: Any, base_version: int | None = None) -> bytes:
    body = {"type": MessageType.UP.value, "payload": payload}
    if base_version is not None:
        body["base"] = int(base_version)
    return json.dumps(body, separators=(",", ":")).encode()


def encode_batch(record: BatchRecord) -> bytes:
    body = {"type": MessageType.BATCH.value, "base": int(record.base_version),
            "input_offsets": {str(p): int(o) for p, o in sorted(record.input_offsets.items())},
            "events": int(record.events), "scores": record.scores,
            "produced_at_ms": record.produced_at_ms or int(time.time() * 1000)}
    if record.drift is not None:
        body["drift"] = record.drift
    if record.rollout is not None:
        body["rollout"] = record.rollout
    return json.dumps(body, separators=(",", ":")).encode()


def decode_update(raw: bytes | str | None) -> UpdateMessage | None:
    """Decode one record; ``None`` (with a logged warning) for anything malformed."""
    try:
        body = json.loads(raw)
        kind = MessageType(body["type"])
        if kind is MessageType.UP:
            base = body.get("base")
            return UpdateMessage(kind, body["payload"], None if base is None else int(base))
        if kind is MessageType.BATCH:
            record = BatchRecord(int(body["base"]), {int(p): int(o) for p, o in body["input_offsets"].items()},
                                 int(body["events"]), _scores(body["scores"]), int(body.get("produced_at_ms", 0)),
                                 body.get("drift") if isinstance(body.get("drift"), dict) else None,
                                 body.get("rollout") if isinstance(body.get("rollout"), list) else None)
            return UpdateMessage(kind, record, record.base_version)
        notice = ModelNotice(
            model_name=str(body["model_name"]),
            version=int(body["version"]),
            delta_version=None if body.get("delta_version") is None else int(body["delta_version"]),
            alias=str(body.get("alias", CHAMPION)),
            produced_at_ms=int(body.get("produced_at_ms", 0)),
        )
        return UpdateMessage(kind, notice)
    except Exception as exc:  # whatever a record holds (1e999 as a version: OverflowError), it is skipped
        log.warning("skipping malformed update message %.200r: %s: %s", raw, type(exc).__name__, exc)
        return None


def _scores(body) -> dict[str, dict[str, list[float]]]:
    return {str(model): {str(loss): [float(total), float(count)] for loss, (total, count) in losses.items()}
            for model, losses in body.items()}
