"""What an endpoint takes and answers, declared next to its code: the source of the OpenAPI spec and of roles.

Each view function carries one :class:`Operation` (the :func:`operation` decorator): a summary,
the query parameters it reads, its request body, its answer and whether it writes. The spec
(:mod:`serving_layer.openapi`) is assembled from these and the Flask routes (paths, methods, path
parameters); :mod:`serving_layer.auth` reads ``writes`` to decide who may call it. The shared
parameters (``howMany``, ``offset``, ...) and answer shapes live here once.

>>> @operation("Echo.", query=PAGING, answer=ids_answer())
... def view(): ...
>>> operation_of(view).summary, [p.name for p in operation_of(view).query], operation_of(view).writes
('Echo.', ['howMany', 'offset'], False)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from serving_layer.formats import CSV, JSON, MAX_RESULTS

ATTRIBUTE = "headwater_operation"


@dataclass(frozen=True)
class Param:
    """A query parameter: its name, JSON schema and meaning."""

    name: str
    schema: dict
    description: str

    def spec(self) -> dict:
        entry = {"name": self.name, "in": "query", "required": False, "schema": self.schema,
                 "description": self.description}
        if self.schema.get("type") == "array":
            entry.update(style="form", explode=True)
        return entry


HOW_MANY = Param("howMany", {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "default": 10},
                 f"how many answers to return (howMany + offset at most {MAX_RESULTS})")
OFFSET = Param("offset", {"type": "integer", "minimum": 0, "maximum": MAX_RESULTS - 1, "default": 0},
               "how many of the best answers to skip (paging)")
CONSIDER_KNOWN_ITEMS = Param("considerKnownItems", {"type": "boolean", "default": False},
                             "also recommend items the user already interacted with")
RESCORER_PARAMS = Param("rescorerParams", {"type": "array", "items": {"type": "string"}},
                        "arguments handed to the configured rescorer (headwater.serving.rescorer)")
PAGING = (HOW_MANY, OFFSET)
RANKING = (HOW_MANY, OFFSET, RESCORER_PARAMS)


@dataclass(frozen=True)
class Body:
    """A text request body: its media types, an example and what it holds."""

    description: str
    example: str
    media_types: tuple[str, ...] = ("text/plain", CSV)


LINES_BODY_NOTE = ("One item per line; blank lines are skipped. `Content-Encoding: gzip` or `deflate` "
                   "compresses the body; `application/zip` sends the files of an archive; a `multipart/form-data` "
                   "body sends several parts, each plain text, gzip or zip (by its Content-Type or file name).")


def lines_body(what: str, example: str) -> Body:
    return Body(f"{what}. {LINES_BODY_NOTE}", example, ("text/plain", CSV, JSON))


@dataclass(frozen=True)
class Answer:
    """A 200 answer: the JSON schema (``Accept: application/json``) and the CSV it renders as otherwise."""

    description: str
    json_schema: dict
    csv: bool = True


def id_values_answer(value_name: str = "value", what: str = "IDs with their scores, best first") -> Answer:
    row = {"type": "object", "required": ["id", value_name],
           "properties": {"id": {"type": "string"}, value_name: {"type": "number"}}}
    return Answer(f"{what}; CSV lines `id,{value_name}`", {"type": "array", "items": row})


def values_answer(item_schema: dict | None = None, what: str = "one value per requested ID or datum") -> Answer:
    return Answer(f"{what}; CSV: one per line", {"type": "array", "items": item_schema or {"type": "number"}})


def value_answer(schema: dict | None = None, what: str = "one value") -> Answer:
    """A single value (Oryx's answer of a one-datum endpoint): bare in JSON, one line in CSV."""
    return Answer(f"{what}; CSV: one line", schema or {"type": "number"})


def ids_answer(what: str = "IDs") -> Answer:
    return Answer(f"{what}; CSV: one per line", {"type": "array", "items": {"type": "string"}})


SENT_ANSWER = Answer("how many input lines were sent to `<id>.input` (the model changes once the speed "
                     "layer's updates come back)",
                     {"type": "object", "required": ["sent"],
                      "properties": {"sent": {"type": "integer", "minimum": 0}}},
                     csv=False)


@dataclass(frozen=True)
class Operation:
    summary: str
    answer: Answer
    query: tuple[Param, ...] = ()
    body: Body | None = None
    writes: bool = False
    # path parameter -> its meaning (names as in the Flask rule)
    path: dict[str, str] = field(default_factory=dict)
    # statuses other than 200 the endpoint answers for conditions it knows (besides the common ones)
    errors: tuple[int, ...] = (400, 404)


def operation(summary: str, *, answer: Answer, query: tuple[Param, ...] = (), body: Body | None = None,
              writes: bool = False, path: dict[str, str] | None = None, errors: tuple[int, ...] = (400, 404),
              ) -> Callable:
    """Declare what a view takes and answers (see the module docstring)."""
    described = Operation(summary, answer, tuple(query), body, writes, dict(path or {}), tuple(errors))

    def mark(view: Callable) -> Callable:
        setattr(view, ATTRIBUTE, described)
        return view

    return mark


def operation_of(view: Callable | None) -> Operation | None:
    return getattr(view, ATTRIBUTE, None)


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UNDESCRIBED = Answer("the endpoint's answer (its app does not describe it)", {})


def described_or_default(view: Callable | None, method: str) -> Operation:
    """The view's operation; for an endpoint its app did not describe (a plug-in app's), one that
    takes its summary from the docstring and counts every POST, PUT, PATCH and DELETE as a write."""
    declared = operation_of(view)
    if declared is not None:
        return declared
    doc = ((getattr(view, "__doc__", None) or "").strip().splitlines() or [""])[0]
    return Operation(doc or "Not described by its app.", UNDESCRIBED, writes=method in WRITE_METHODS,
                     errors=(400, 404))


def public(view: Callable) -> Callable:
    """Mark a view that needs no credentials (``/ready``, ``/metrics``, pages that carry no data)."""
    view.headwater_public = True
    return view


def is_public(endpoint: str | None, view: Callable | None) -> bool:
    """Static files (the console's script and style) are public too: they are the same for everyone."""
    static = endpoint is not None and (endpoint == "static" or endpoint.endswith(".static"))
    return static or bool(getattr(view, "headwater_public", False))


def schema_of(answer: Answer) -> dict[str, Any]:
    """The ``content`` of a 200 response."""
    content: dict[str, Any] = {JSON: {"schema": answer.json_schema}}
    if answer.csv:
        content[CSV] = {"schema": {"type": "string"}}
    return content


__all__ = ["Answer", "Body", "Operation", "Param", "PAGING", "RANKING", "SENT_ANSWER", "id_values_answer",
           "ids_answer", "is_public", "lines_body", "operation", "operation_of", "public", "values_answer"]
