"""ALS input events, Oryx's format: ``user,item[,strength[,timestamp_ms]]`` per line (or a JSON array).

A missing strength means 1; an empty one deletes the preference. A line that does not parse, or holds
a value outside ``headwater.input.*`` (an id too long, a strength beyond ``max-abs-strength``, a
timestamp out of range), is returned with the reason instead of raising.

Plain ASCII lines are parsed all at once with Arrow compute (``_parse_plain``, ~4x the line loop);
every line that is not plainly valid goes through the loop, which names what is wrong.

>>> parsed = ALSFormat().parse(["u1,i1,2.5,1000", "u2,i2", "u3,i3,", "just-one-field", "u4,i4,1e300"])
>>> parsed.table.column("strength").to_pylist()
[2.5, 1.0, None]
>>> for index, reason in parsed.rejected: print(index, reason)
3 expected 2 to 4 comma-separated fields user,item[,strength[,timestamp]], got 1
4 strength must be within ±1e+06 (headwater.input.max-abs-strength), got '1e300'
"""
from __future__ import annotations

import csv
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from headwater.input_bounds import DEFAULT_BOUNDS, InputBounds
from headwater.input_format import ParsedLines, parse_each, split_line

# What the vectorised path takes as a number or a timestamp; anything else takes the loop. At most 30
# digits and a two-digit exponent: such a number is always finite, and Arrow parses it as float() does.
PLAIN_NUMBER = r"^[+-]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})([eE][+-]?[0-9]{1,2})?$"
PLAIN_INTEGER = r"^-?[0-9]{1,18}$"
# quotes and brackets (CSV quoting, JSON arrays) and control characters take the loop
NOT_PLAIN = r'["\[\x00-\x1f\x7f]'


class ALSFormat:
    """``user,item[,strength[,timestamp_ms]]``; a missing strength means 1, an empty one a delete."""

    schema = pa.schema([
        ("user", pa.string()), ("item", pa.string()),
        ("strength", pa.float64()), ("event_time_ms", pa.int64()),
    ])

    def __init__(self, bounds: InputBounds = DEFAULT_BOUNDS):
        self.bounds = bounds

    @classmethod
    def from_config(cls, config) -> ALSFormat:
        return cls(InputBounds.from_config(config))

    def parse(self, lines: Sequence[str]) -> ParsedLines:
        try:
            plain, rest = self._parse_plain(lines)
        except Exception:  # noqa: BLE001 - an optimisation only: the loop takes every line
            plain, rest = None, list(range(len(lines)))
        index, rows, rejected = parse_each([lines[i] for i in rest], self._parse_one)
        users, items, strengths, times = zip(*rows) if rows else ((), (), (), ())
        table = pa.table({"line_index": pa.array([rest[i] for i in index], pa.int32()),
                          "user": pa.array(users, pa.string()), "item": pa.array(items, pa.string()),
                          "strength": pa.array(strengths, pa.float64()),
                          "event_time_ms": pa.array(times, pa.int64())})
        rejected = [(rest[i], reason) for i, reason in rejected]
        if plain is not None and plain.num_rows:
            table = pa.concat_tables([plain, table]) if table.num_rows else plain
            if len(rest):
                table = table.take(pc.sort_indices(table.column("line_index")))
        return ParsedLines(table, rejected)

    def _parse_plain(self, lines: Sequence[str]) -> tuple[pa.Table | None, list[int]]:
        """(the rows of the plainly valid lines, the indices of the others) with Arrow compute.

        Plainly valid: ASCII, no quote, bracket or control character, 2 to 4 fields, ids of 1 to
        ``max-id-length`` characters, a strength and a timestamp in :data:`PLAIN_NUMBER` /
        :data:`PLAIN_INTEGER` form and within bounds. The loop would parse each of these lines the same way.
        """
        if not lines:
            return None, []
        b = self.bounds
        text = pa.array(lines, pa.string())
        fields = pc.list_value_length(pc.split_pattern(text, ","))
        # padded, every line has at least four fields to take; the true count decides what they mean
        padded = pc.split_pattern(pc.binary_join_element_wise(text, ",,,", ""), ",")
        user, item, strength_text, time_text = (pc.utf8_trim_whitespace(pc.list_element(padded, n)) for n in range(4))
        ok = pc.and_(pc.string_is_ascii(text), pc.invert(pc.match_substring_regex(text, NOT_PLAIN)))
        ok = pc.and_(ok, pc.less_equal(pc.binary_length(text), b.max_line_bytes))
        ok = pc.and_(ok, pc.and_(pc.greater_equal(fields, 2), pc.less_equal(fields, 4)))
        for ids in (user, item):
            length = pc.utf8_length(ids)
            ok = pc.and_(ok, pc.and_(pc.greater_equal(length, 1), pc.less_equal(length, b.max_id_length)))

        has_strength = pc.greater_equal(fields, 3)
        deleted = pc.and_(has_strength, pc.equal(strength_text, ""))
        numeric = pc.match_substring_regex(strength_text, PLAIN_NUMBER)
        values = pc.cast(pc.if_else(numeric, strength_text, "0"), pa.float64())
        in_range = pc.and_(numeric, pc.less_equal(pc.abs(values), b.max_abs_strength))
        ok = pc.and_(ok, pc.or_(pc.invert(has_strength), pc.or_(deleted, in_range)))
        strength = pc.if_else(has_strength, pc.if_else(deleted, pa.scalar(None, pa.float64()), values), 1.0)

        has_time = pc.and_(pc.equal(fields, 4), pc.not_equal(time_text, ""))
        integral = pc.match_substring_regex(time_text, PLAIN_INTEGER)
        stamps = pc.cast(pc.if_else(integral, time_text, "0"), pa.int64())
        in_range = pc.and_(integral, pc.and_(pc.greater_equal(stamps, b.min_timestamp_ms),
                                             pc.less_equal(stamps, b.max_timestamp_ms)))
        ok = pc.and_(ok, pc.or_(pc.invert(has_time), in_range))
        stamps = pc.if_else(has_time, stamps, pa.scalar(None, pa.int64()))

        table = pa.table({"line_index": pa.array(range(len(lines)), pa.int32()), "user": user, "item": item,
                          "strength": strength, "event_time_ms": stamps})
        rest = pc.indices_nonzero(pc.invert(ok)).to_pylist()
        return table.filter(ok), rest

    def _parse_one(self, line: str) -> tuple[str, str, float | None, int | None]:
        line = self.bounds.line(line)
        try:
            fields = split_line(line)
        except (ValueError, csv.Error) as exc:
            raise ValueError(f"not a CSV line or JSON array: {exc}") from None
        if not 2 <= len(fields) <= 4:
            raise ValueError("expected 2 to 4 comma-separated fields user,item[,strength[,timestamp]], "
                             f"got {len(fields)}")
        user, item = self.bounds.identifier(fields[0], "user"), self.bounds.identifier(fields[1], "item")
        if not user or not item:
            raise ValueError("user and item must not be empty")
        strength: float | None = 1.0
        if len(fields) >= 3:
            text = fields[2].strip()
            strength = None if text == "" else self.bounds.number(text, "strength", self.bounds.max_abs_strength)
        ts = None
        if len(fields) == 4 and fields[3].strip():
            ts = self.bounds.timestamp(fields[3].strip())
        return user, item, strength, ts


__all__ = ["ALSFormat"]
