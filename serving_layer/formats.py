"""Request parsing and response rendering shared by every app's endpoints.

Answers are CSV by default (Oryx: ``id,value`` per line) and JSON when the client's ``Accept``
prefers ``application/json``. Query parameters and path segments are validated with messages that
name the value (a 400, never a 500). Request bodies are bounded: at most
``headwater.serving.max-body-bytes`` as sent, and a gzip/deflate/zip body or multipart part is inflated
as a stream that stops at ``headwater.serving.max-inflated-bytes`` (:mod:`serving_layer.uploads`: a bomb
costs that much, not its full size).

>>> parse_item_values(["i1=2.5", "i2"])
[('i1', 2.5), ('i2', 1.0)]
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator

from flask import Response, current_app, request

from serving_layer.errors import ApiError, bad_parameter
from serving_layer.uploads import decoded_body, too_large

CSV = "text/csv"
JSON = "application/json"
# Oryx caps howMany + offset; so do we, so one request cannot ask to rank and render every item.
MAX_RESULTS = 100_000
# how much of a request body is read at a time
BODY_CHUNK_BYTES = 64 * 1024


def wants_json() -> bool:
    best = request.accept_mimetypes.best_match([CSV, "text/plain", JSON], default=CSV)
    return best == JSON


def _render(json_body, csv_lines: Iterable[str]) -> Response:
    if wants_json():
        return Response(json.dumps(json_body), mimetype=JSON)
    return Response("".join(f"{line}\n" for line in csv_lines), mimetype=CSV)


def csv_field(value) -> str:
    """A CSV field, quoted when it must be: a comma, quote or line break, or a leading ``[`` (which would
    make the whole line read as a JSON array)."""
    text = str(value)
    if any(c in text for c in ',"\n\r') or text.lstrip().startswith("["):
        return '"' + text.replace('"', '""') + '"'
    return text


def id_values(pairs: list[tuple[str, float]], value_name: str = "value") -> Response:
    return _render([{"id": i, value_name: v} for i, v in pairs],
                   (f"{csv_field(i)},{v}" for i, v in pairs))


def values(numbers: list) -> Response:
    return _render(numbers, (str(v) for v in numbers))


def value(single) -> Response:
    """One value, as Oryx answers a single-value endpoint: the bare value in JSON, one line in CSV."""
    return _render(single, [csv_field(single)])


def ids(names: list) -> Response:
    return _render(names, (csv_field(n) for n in names))


def int_param(name: str, default: int, low: int, high: int | None = None) -> int:
    raw = request.args.get(name)
    return default if raw is None else int_value(name, raw, low, high)


def int_value(name: str, raw: str, low: int, high: int | None = None, expected: str | None = None) -> int:
    """``raw`` as an int in [low, high], else a 400 (``"²".isdigit()`` is True, ``int("²")`` fails)."""
    expected = expected or f"an int in the range [{low}, {'inf)' if high is None else f'{high}]'}"
    try:
        value = int(raw)
    except ValueError:
        raise bad_parameter(name, expected, raw) from None
    if value < low or (high is not None and value > high):
        raise bad_parameter(name, expected, value)
    return value


def bool_param(name: str, default: bool = False) -> bool:
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise bad_parameter(name, "true or false", raw)


def paging() -> tuple[int, int]:
    """(howMany, offset) with Oryx's defaults and cap."""
    how_many = int_param("howMany", 10, 1)
    offset = int_param("offset", 0, 0)
    if how_many + offset > MAX_RESULTS:
        raise ApiError(400, f"howMany + offset must be at most {MAX_RESULTS}, got {how_many + offset}")
    return how_many, offset


def parse_item_values(segments: list[str]) -> list[tuple[str, float]]:
    """Path segments ``id`` or ``id=value`` (value defaults to 1)."""
    result = []
    for segment in segments:
        item, sep, raw = segment.partition("=")
        if not item:
            raise ApiError(400, f"path segment {segment!r} has no item ID")
        try:
            value = float(raw) if sep else 1.0
        except ValueError:
            raise ApiError(400, f"the value of {item!r} must be a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise ApiError(400, f"the value of {item!r} must be finite, got {raw!r}")
        result.append((item, value))
    return result


def split_path(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def path_ids(path: str, what: str) -> list[str]:
    """The ids of a ``<path:...>`` segment list: at least one, else a 400."""
    ids = split_path(path)
    if not ids:
        raise ApiError(400, f"the path names no {what}", parameter=what)
    return ids


def body_text() -> str:
    """The request body as text, decoded as :mod:`serving_layer.uploads` says (gzip/deflate, zip, multipart
    parts), within the size limits."""
    config = current_app.config["HEADWATER"]
    max_body = config.get("headwater.serving.max-body-bytes")
    encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    if request.content_length is not None and request.content_length > max_body:
        raise too_large(f"the request body has {request.content_length} bytes", max_body, "max-body-bytes")
    data = decoded_body(_body_chunks(max_body), request.headers.get("Content-Type"), encoding,
                        config.get("headwater.serving.max-inflated-bytes"))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the body is not UTF-8 text: {exc}") from None


def _body_chunks(limit: int) -> Iterator[bytes]:
    """The raw body in chunks, a 413 once more than ``limit`` bytes came (a body sent without a length too)."""
    stream, size = request.stream, 0
    while chunk := stream.read(BODY_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise too_large("the request body is larger", limit, "max-body-bytes")
        yield chunk


def body_lines() -> list[str]:
    """The non-blank lines of the request body."""
    return [line for line in body_text().splitlines() if line.strip()]


def parse_lines(input_format, lines: list[str]):
    """``input_format.parse(lines).table``, or a 400 naming the first bad line and why (all as details)."""
    from headwater.input_format import safe_parse

    parsed = safe_parse(input_format, lines)
    if parsed.rejected:
        index, reason = parsed.rejected[0]
        where = f"datum {lines[index]!r}" if len(lines) == 1 else f"line {index + 1}"
        raise ApiError(400, f"{where}: {reason}",
                       rejected=[{"line": i + 1, "reason": why} for i, why in parsed.rejected[:100]])
    return parsed.table
