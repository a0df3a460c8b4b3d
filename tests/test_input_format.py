"""SchemaCSVFormat's Arrow fast path gives exactly what the line-by-line parser gives, or steps aside."""
from __future__ import annotations

import random

import pytest

from headwater.input_format import InputSchema, SchemaCSVFormat

SCHEMA = InputSchema(["id", "x", "y", "note", "z"], ids=["id"], ignored=["note"])
GOOD = ["1", "2.5", " 3", "4 ", "-0", "1e3", "+1.5", ".5", "5.", "1E-3", "\t7", "0"]
BAD = ["nan", "inf", "", "x", "1_000", "0x10", "1e400", " ", '"4"', "[1]"]


class LineByLine(SchemaCSVFormat):
    def _parse_clean_csv(self, lines):
        return None


@pytest.mark.parametrize("bad_share", [0.0, 0.03, 0.3])
def test_fast_path_matches_the_line_loop(bad_share):
    fast, slow = SchemaCSVFormat(SCHEMA), LineByLine(SCHEMA)
    rng = random.Random(7)
    took_fast = 0
    for _ in range(600):
        lines = []
        for _ in range(rng.randint(1, 5)):
            width = rng.choice([4, 4, 4, 4, 3, 5]) if bad_share else 4
            values = [rng.choice(BAD) if rng.random() < bad_share else rng.choice(GOOD) for _ in range(width)]
            lines.append(",".join([rng.choice(["a", " b ", "\u00a0c"]), *values]))
        got, want = fast.parse(lines), slow.parse(lines)
        assert got.table.to_pydict() == want.table.to_pydict(), lines
        assert got.rejected == want.rejected, lines
        took_fast += fast._parse_clean_csv(lines) is not None
    if bad_share == 0.0:
        assert took_fast == 600  # clean input always takes the fast path


def test_empty_lines_and_embedded_newlines_take_the_line_loop():
    fmt = SchemaCSVFormat(SCHEMA)
    assert fmt._parse_clean_csv(["a,1,2,n,3", ""]) is None
    assert fmt._parse_clean_csv(["a,1,2,n,3\na,1,2,n,3"]) is None
    assert fmt.parse(["a,1,2,n,3", ""]).rejected == [(1, "expected 5 fields id,x,y,note,z, got 1")]
