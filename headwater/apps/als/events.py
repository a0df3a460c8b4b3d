"""ALS input events, Oryx's format: ``user,item[,strength[,timestamp_ms]]`` per line (or a JSON array).

A missing strength means 1; an empty one deletes the preference. A line that does not parse is
returned with the reason instead of raising.

>>> parsed = ALSFormat().parse(["u1,i1,2.5,1000", "u2,i2", "u3,i3,", "just-one-field"])
>>> parsed.table.column("strength").to_pylist()
[2.5, 1.0, None]
>>> parsed.rejected
[(3, 'expected 2 to 4 comma-separated fields user,item[,strength[,timestamp]], got 1')]
"""
from __future__ import annotations

import csv
from collections.abc import Sequence

import pyarrow as pa

from headwater.input_format import ParsedLines, parse_integer, parse_number, split_line


class ALSFormat:
    """``user,item[,strength[,timestamp_ms]]``; a missing strength means 1, an empty one a delete."""

    schema = pa.schema([
        ("user", pa.string()), ("item", pa.string()),
        ("strength", pa.float64()), ("event_time_ms", pa.int64()),
    ])

    @classmethod
    def from_config(cls, config) -> ALSFormat:
        return cls()

    def parse(self, lines: Sequence[str]) -> ParsedLines:
        index, users, items, strengths, times, rejected = [], [], [], [], [], []
        for i, line in enumerate(lines):
            try:
                user, item, strength, ts = self._parse_one(line)
            except ValueError as exc:
                rejected.append((i, str(exc)))
                continue
            index.append(i)
            users.append(user)
            items.append(item)
            strengths.append(strength)
            times.append(ts)
        table = pa.table({"line_index": pa.array(index, pa.int32()), "user": users, "item": items,
                          "strength": pa.array(strengths, pa.float64()),
                          "event_time_ms": pa.array(times, pa.int64())})
        return ParsedLines(table, rejected)

    @staticmethod
    def _parse_one(line: str) -> tuple[str, str, float | None, int | None]:
        try:
            fields = split_line(line)
        except (ValueError, csv.Error) as exc:
            raise ValueError(f"not a CSV line or JSON array: {exc}") from None
        if not 2 <= len(fields) <= 4:
            raise ValueError("expected 2 to 4 comma-separated fields user,item[,strength[,timestamp]], "
                             f"got {len(fields)}")
        user, item = fields[0].strip(), fields[1].strip()
        if not user or not item:
            raise ValueError("user and item must not be empty")
        strength: float | None = 1.0
        if len(fields) >= 3:
            text = fields[2].strip()
            strength = None if text == "" else parse_number(text, "strength")
        ts = None
        if len(fields) == 4 and fields[3].strip():
            ts = parse_integer(fields[3].strip(), "timestamp")
        return user, item, strength, ts


__all__ = ["ALSFormat"]
