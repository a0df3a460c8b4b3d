"""Request parsing and response rendering shared by every app's endpoints.

Answers are CSV by default (Oryx: ``id,value`` per line) and JSON when the client's ``Accept``
prefers ``application/json``. Query parameters are validated with messages that name the value.

>>> parse_item_values(["i1=2.5", "i2"])
[('i1', 2.5), ('i2', 1.0)]
"""
from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Iterable

from flask import Response, request

from serving_layer.errors import ApiError, bad_parameter

CSV = "text/csv"
JSON = "application/json"
# Oryx caps howMany + offset; so do we, so one request cannot ask to rank and render every item.
MAX_RESULTS = 100_000


def wants_json() -> bool:
    best = request.accept_mimetypes.best_match([CSV, "text/plain", JSON], default=CSV)
    return best == JSON


def _render(json_body, csv_lines: Iterable[str]) -> Response:
    if wants_json():
        return Response(json.dumps(json_body), mimetype=JSON)
    return Response("".join(f"{line}\n" for line in csv_lines), mimetype=CSV)


def csv_field(value) -> str:
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def id_values(pairs: list[tuple[str, float]], value_name: str = "value") -> Response:
    return _render([{"id": i, value_name: v} for i, v in pairs],
                   (f"{csv_field(i)},{v}" for i, v in pairs))


def values(numbers: list) -> Response:
    return _render(numbers, (str(v) for v in numbers))


def ids(names: list) -> Response:
    return _render(names, (csv_field(n) for n in names))


def int_param(name: str, default: int, low: int, high: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    expected = f"an int in the range [{low}, {'inf)' if high is None else f'{high}]'}"
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


def body_text() -> str:
    """The request body as text, inflating ``Content-Encoding: gzip`` or ``deflate``."""
    data = request.get_data(cache=False)
    encoding = (request.headers.get("Content-Encoding") or "").lower()
    try:
        if encoding == "gzip":
            data = gzip.decompress(data)
        elif encoding == "deflate":
            data = zlib.decompress(data)
        elif encoding not in ("", "identity"):
            raise ApiError(415, f"Content-Encoding {encoding!r} is not supported (use gzip or deflate)")
        return data.decode("utf-8")
    except (OSError, zlib.error, EOFError) as exc:
        raise ApiError(400, f"the body is not valid {encoding} data: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the body is not UTF-8 text: {exc}") from None


def body_lines() -> list[str]:
    """The non-blank lines of the request body."""
    return [line for line in body_text().splitlines() if line.strip()]


def parse_lines(input_format, lines: list[str]):
    """``input_format.parse(lines).table``, or a 400 naming the first bad line and why (all as details)."""
    parsed = input_format.parse(lines)
    if parsed.rejected:
        index, reason = parsed.rejected[0]
        where = f"datum {lines[index]!r}" if len(lines) == 1 else f"line {index + 1}"
        raise ApiError(400, f"{where}: {reason}",
                       rejected=[{"line": i + 1, "reason": why} for i, why in parsed.rejected[:100]])
    return parsed.table
