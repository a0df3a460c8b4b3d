"""Parsing input lines into typed columns, shared by ingestion, the speed layer and the serving layer.

An input format turns text lines into a pyarrow table plus ``(line index, reason)`` for the lines
it refuses, and never raises for a bad line, so one bad record never stops a job: each line is
parsed under its own catch-all (:func:`parse_each`), values are checked against
``headwater.input.*`` (:class:`~headwater.input_bounds.InputBounds`), and :func:`safe_parse` holds
any format, a plug-in's too, to that contract. This module has what the formats share
(:class:`ParsedLines`, splitting a CSV line or a JSON array) and the schema-driven CSV rows of
Oryx's ``input-schema`` (k-means and forests); an app with its own line format (ALS events)
defines it in its package.

>>> parsed = safe_parse(SchemaCSVFormat(InputSchema(["x"])), ["1", "[" * 3000, "1e999"])
>>> parsed.table.column("x").to_pylist(), [reason for _, reason in parsed.rejected]
([1.0], ['nested too deeply to parse', "feature 'x' must be finite, got '1e999'"])
"""
from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from headwater.constraints import ConfigError
from headwater.input_bounds import DEFAULT_BOUNDS, InputBounds

log = logging.getLogger(__name__)
# the longest reason kept for a rejected line
MAX_REASON_CHARS = 500


@dataclass
class ParsedLines:
    """Valid lines as typed columns (``line_index`` points back into the input) plus (index, reason)."""

    table: pa.Table
    rejected: list[tuple[int, str]]


def split_line(line: str) -> list[str]:
    """The fields of a CSV line, or of a JSON array of scalars (a line starting with ``[``)."""
    stripped = line.strip()
    if stripped.startswith("["):
        values = json.loads(stripped)
        if not isinstance(values, list):
            raise ValueError("a JSON line must be an array")
        if not all(v is None or isinstance(v, (str, int, float)) for v in values):
            raise ValueError("a JSON line's values must be strings, numbers or null")
        return ["" if v is None else str(v) for v in values]
    if '"' in stripped:
        return next(csv.reader(io.StringIO(stripped)))
    return stripped.split(",")


def rejection_reason(exc: BaseException) -> str:
    """Why a line was refused, in words, from whatever parsing it raised."""
    if isinstance(exc, RecursionError):
        reason = "nested too deeply to parse"
    elif isinstance(exc, (ValueError, csv.Error)) and str(exc):
        reason = str(exc)
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + "..."


def parse_each(lines: Sequence[str], parse_one: Callable[[str], Any]) -> tuple[list[int], list, list[tuple[int, str]]]:
    """``parse_one`` over every line: (indices of the parsed lines, their rows, (index, reason) of the others).

    Whatever ``parse_one`` raises (a ValueError naming the field, a RecursionError from ``[`` × 3,000,
    an OverflowError) rejects that one line.
    """
    kept, rows, rejected = [], [], []
    for i, line in enumerate(lines):
        try:
            row = parse_one(line)
        except Exception as exc:  # the per-line catch-all: no line may stop a job
            rejected.append((i, rejection_reason(exc)))
            continue
        kept.append(i)
        rows.append(row)
    return kept, rows, rejected


def safe_parse(input_format, lines: Sequence[str]) -> ParsedLines:
    """``input_format.parse(lines)``, held to the contract whatever the format does.

    A format that raises is asked again line by line, and a line it still raises on is rejected with
    the error; a line it neither parsed nor rejected is rejected as such. So every line ends up either
    a row or a rejection, for any format (a plug-in's too).
    """
    try:
        parsed = input_format.parse(lines)
    except Exception as exc:  # a format broke its contract: isolate the line that makes it raise
        log.warning("input format %s raised on a batch of %d lines (%s); parsing them one by one",
                    type(input_format).__name__, len(lines), rejection_reason(exc))
        parsed = _parse_one_by_one(input_format, lines)
    seen = np.zeros(len(lines), dtype=bool)
    seen[parsed.table.column("line_index").to_numpy()] = True
    seen[[i for i, _ in parsed.rejected]] = True
    if not seen.all():
        missing = np.flatnonzero(~seen).tolist()
        parsed = ParsedLines(parsed.table, sorted(parsed.rejected + [
            (i, "the input format returned neither a row nor a reason for this line") for i in missing]))
    return parsed


def _parse_one_by_one(input_format, lines: Sequence[str]) -> ParsedLines:
    kept, tables, rejected = parse_each(lines, lambda line: input_format.parse([line]))
    parts = []
    for i, one in zip(kept, tables):
        if one.rejected:
            rejected.append((i, one.rejected[0][1]))
        elif one.table.num_rows:
            position = one.table.column_names.index("line_index")
            parts.append(one.table.set_column(position, "line_index", pa.array([i], pa.int32())))
    if not parts:
        columns = {"line_index": pa.array([], pa.int32())}
        columns.update({f.name: pa.array([], f.type) for f in input_format.schema})
        return ParsedLines(pa.table(columns), sorted(rejected))
    return ParsedLines(pa.concat_tables(parts), sorted(rejected))


class InputSchema:
    """Oryx's input schema: which CSV columns are numeric, categorical, ignored, id or the target.

    >>> schema = InputSchema(["a", "b", "label"], categorical=["label"], target="label")
    >>> schema.predictors, schema.numeric
    (['a', 'b'], ['a', 'b'])
    """

    def __init__(self, feature_names: Sequence[str], numeric: Sequence[str] = (),
                 categorical: Sequence[str] = (), ignored: Sequence[str] = (), ids: Sequence[str] = (),
                 target: str | None = None):
        self.feature_names = list(feature_names)
        if not self.feature_names:
            raise ConfigError("headwater.input-schema.feature-names must list the CSV columns")
        if len(set(self.feature_names)) != len(self.feature_names):
            raise ConfigError("headwater.input-schema.feature-names has duplicate names")
        for key, names in (("numeric-features", numeric), ("categorical-features", categorical),
                           ("ignored-features", ignored), ("id-features", ids)):
            unknown = sorted(set(names) - set(self.feature_names))
            if unknown:
                raise ConfigError(f"headwater.input-schema.{key} names unknown features {unknown}")
        if target is not None and target not in self.feature_names:
            raise ConfigError(f"headwater.input-schema.target-feature {target!r} is not in feature-names")
        self.categorical = [f for f in self.feature_names if f in set(categorical)]
        self.ignored = [f for f in self.feature_names if f in set(ignored)]
        self.ids = [f for f in self.feature_names if f in set(ids)]
        not_numeric = set(self.categorical) | set(self.ignored) | set(self.ids)
        self.numeric = ([f for f in self.feature_names if f in set(numeric)] if numeric
                        else [f for f in self.feature_names if f not in not_numeric])
        self.target = target
        self.predictors = [f for f in self.feature_names
                           if f not in set(self.ignored) | set(self.ids) and f != target]

    @classmethod
    def from_config(cls, config) -> InputSchema:
        s = config.section("headwater.input-schema")
        return cls(s.get("feature-names", []), s.get("numeric-features", []),
                   s.get("categorical-features", []), s.get("ignored-features", []),
                   s.get("id-features", []), s.get("target-feature"))

    @property
    def stored(self) -> list[str]:
        """The columns kept in the events table: every feature that is not ignored."""
        return [f for f in self.feature_names if f not in set(self.ignored)]

    def is_numeric(self, name: str) -> bool:
        return name in set(self.numeric)


class SchemaCSVFormat:
    """CSV rows (or JSON arrays) with one value per feature of an :class:`InputSchema`.

    Numeric features are finite numbers within ``headwater.input.max-abs-feature``; the others are
    ids or categories within ``headwater.input.max-id-length`` (empty allowed: a missing value).

    >>> fmt = SchemaCSVFormat(InputSchema(["x", "y", "colour"], categorical=["colour"]))
    >>> parsed = fmt.parse(["1.5,2,red", "1,oops,blue", "1,2", "1,2e13,red"])
    >>> parsed.table.to_pydict()
    {'line_index': [0], 'x': [1.5], 'y': [2.0], 'colour': ['red']}
    >>> for index, reason in parsed.rejected: print(index, reason)
    1 feature 'y' is not a number: 'oops'
    2 expected 3 fields x,y,colour, got 2
    3 feature 'y' must be within ±1e+12 (headwater.input.max-abs-feature), got '2e13'
    """

    def __init__(self, schema: InputSchema, bounds: InputBounds = DEFAULT_BOUNDS):
        self.input_schema = schema
        self.bounds = bounds
        self._positions = [(schema.feature_names.index(f), f, schema.is_numeric(f)) for f in schema.stored]
        self.schema = pa.schema([(f, pa.float64() if numeric else pa.string())
                                 for _, f, numeric in self._positions])

    @classmethod
    def from_config(cls, config) -> SchemaCSVFormat:
        """The rows of ``headwater.input-schema`` (the input format of k-means and the forests)."""
        return cls(InputSchema.from_config(config), InputBounds.from_config(config))

    def parse(self, lines: Sequence[str]) -> ParsedLines:
        fast = self._parse_clean_csv(lines)
        if fast is not None:
            return fast
        index, rows, rejected = parse_each(lines, self._parse_one)
        columns = list(zip(*rows)) if rows else [()] * len(self._positions)
        arrays = {"line_index": pa.array(index, pa.int32())}
        arrays.update({f: pa.array(values, self.schema.field(f).type)
                       for (_, f, _), values in zip(self._positions, columns)})
        return ParsedLines(pa.table(arrays), rejected)

    def _parse_one(self, line: str) -> list:
        fields = split_line(self.bounds.line(line))
        names = self.input_schema.feature_names
        if len(fields) != len(names):
            raise ValueError(f"expected {len(names)} fields {','.join(names)}, got {len(fields)}")
        return [self.bounds.number(fields[p].strip(), f"feature {f!r}", self.bounds.max_abs_feature) if numeric
                else self.bounds.identifier(fields[p], f"feature {f!r}") for p, f, numeric in self._positions]

    def _parse_clean_csv(self, lines: Sequence[str]) -> ParsedLines | None:
        """All lines at once with Arrow's CSV reader (~10x the line loop), or None to take the loop.

        Only when the result is the loop's: plain unquoted CSV, every row the right width, every number
        finite, present and within bounds, every text value a valid id. Anything else (JSON arrays,
        quotes, a bad line) goes through the loop, which also names what is wrong. The fast path is an
        optimisation only: whatever it raises hands the lines to the loop.
        """
        longest = self.bounds.max_line_bytes // 4  # longer lines need their bytes counted: the loop does
        if not lines or any(('"' in line or "[" in line or "\n" in line or "\r" in line or len(line) > longest)
                            for line in lines):
            return None
        try:
            return self._read_clean_csv(lines)
        except Exception:  # noqa: BLE001 - see the docstring
            return None

    def _read_clean_csv(self, lines: Sequence[str]) -> ParsedLines | None:
        import pyarrow.compute as pc
        import pyarrow.csv as pa_csv

        names = self.input_schema.feature_names
        try:
            table = pa_csv.read_csv(
                pa.py_buffer("\n".join(lines).encode()),
                read_options=pa_csv.ReadOptions(column_names=names, use_threads=False),
                parse_options=pa_csv.ParseOptions(quote_char=False, ignore_empty_lines=False),
                convert_options=pa_csv.ConvertOptions(
                    column_types={f: self.schema.field(f).type for f in self.schema.names},
                    include_columns=self.schema.names, strings_can_be_null=False, quoted_strings_can_be_null=False))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        if table.num_rows != len(lines):
            return None
        arrays = {"line_index": pa.array(range(len(lines)), pa.int32())}
        for name in self.schema.names:
            column = table.column(name).combine_chunks()
            if pa.types.is_floating(column.type):
                if column.null_count or not pc.all(pc.is_finite(column)).as_py():
                    return None
                if len(column) and pc.max(pc.abs(column)).as_py() > self.bounds.max_abs_feature:
                    return None
            else:
                column = pc.utf8_trim_whitespace(column)
                lengths = pc.utf8_length(column)
                if len(column) and (pc.max(lengths).as_py() > self.bounds.max_id_length
                                    or pc.any(pc.match_substring_regex(column, "[\\x00-\\x1f\\x7f]")).as_py()):
                    return None
            arrays[name] = column
        return ParsedLines(pa.table(arrays), [])
