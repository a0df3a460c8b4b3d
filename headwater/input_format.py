"""Parsing input lines into typed columns, shared by ingestion, the speed layer and the serving layer.

An input format turns text lines into a pyarrow table plus ``(line index, reason)`` for the lines
it refuses, and never raises for a bad line, so one bad record never stops a job. This module has
what the formats share (:class:`ParsedLines`, splitting a CSV line or a JSON array, number
checks) and the schema-driven CSV rows of Oryx's ``input-schema`` (k-means and forests); an app
with its own line format (ALS events) defines it in its package.
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from headwater.constraints import ConfigError


@dataclass
class ParsedLines:
    """Valid lines as typed columns (``line_index`` points back into the input) plus (index, reason)."""

    table: pa.Table
    rejected: list[tuple[int, str]]


def split_line(line: str) -> list[str]:
    stripped = line.strip()
    if stripped.startswith("["):
        values = json.loads(stripped)
        if not isinstance(values, list):
            raise ValueError("a JSON line must be an array")
        return ["" if v is None else str(v) for v in values]
    if '"' in stripped:
        return next(csv.reader(io.StringIO(stripped)))
    return stripped.split(",")


def parse_number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {text!r}")
    return value


def parse_integer(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        try:
            as_float = float(text)
        except ValueError:
            raise ValueError(f"{name} is not an integer: {text!r}") from None
        if not as_float.is_integer():
            raise ValueError(f"{name} is not an integer: {text!r}") from None
        return int(as_float)


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

    >>> fmt = SchemaCSVFormat(InputSchema(["x", "y", "colour"], categorical=["colour"]))
    >>> parsed = fmt.parse(["1.5,2,red", "1,oops,blue", "1,2"])
    >>> parsed.table.to_pydict()
    {'line_index': [0], 'x': [1.5], 'y': [2.0], 'colour': ['red']}
    >>> parsed.rejected
    [(1, "feature 'y' is not a number: 'oops'"), (2, 'expected 3 fields x,y,colour, got 2')]
    """

    def __init__(self, schema: InputSchema):
        self.input_schema = schema
        self._positions = [(schema.feature_names.index(f), f, schema.is_numeric(f)) for f in schema.stored]
        self.schema = pa.schema([(f, pa.float64() if numeric else pa.string())
                                 for _, f, numeric in self._positions])

    @classmethod
    def from_config(cls, config) -> SchemaCSVFormat:
        """The rows of ``headwater.input-schema`` (the input format of k-means and the forests)."""
        return cls(InputSchema.from_config(config))

    def parse(self, lines: Sequence[str]) -> ParsedLines:
        fast = self._parse_clean_csv(lines)
        if fast is not None:
            return fast
        columns: dict[str, list] = {f: [] for _, f, _ in self._positions}
        index, rejected = [], []
        expected = len(self.input_schema.feature_names)
        for i, line in enumerate(lines):
            try:
                fields = split_line(line)
                if len(fields) != expected:
                    raise ValueError(f"expected {expected} fields {','.join(self.input_schema.feature_names)}, "
                                     f"got {len(fields)}")
                row = [(parse_number(fields[p].strip(), f"feature {f!r}") if numeric else fields[p].strip())
                       for p, f, numeric in self._positions]
            except (ValueError, csv.Error) as exc:
                rejected.append((i, str(exc)))
                continue
            index.append(i)
            for (_, f, _), value in zip(self._positions, row):
                columns[f].append(value)
        arrays = {"line_index": pa.array(index, pa.int32())}
        arrays.update({f: pa.array(columns[f], self.schema.field(f).type) for _, f, _ in self._positions})
        return ParsedLines(pa.table(arrays), rejected)

    def _parse_clean_csv(self, lines: Sequence[str]) -> ParsedLines | None:
        """All lines at once with Arrow's CSV reader (~10x the line loop), or None to take the loop.

        Only when the result is the loop's: plain unquoted CSV, every row the right width, every number
        finite and present. Anything else (JSON arrays, quotes, a bad line) goes through the loop, which
        also names what is wrong.
        """
        if not lines or any(('"' in line or "[" in line or "\n" in line or "\r" in line) for line in lines):
            return None
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
            else:
                column = pc.utf8_trim_whitespace(column)
            arrays[name] = column
        return ParsedLines(pa.table(arrays), [])
