"""Property tests over every input format: for any text or bytes, parsing never raises, every line is a row or
a rejection, and every parsed value lies within ``headwater.input.*``.

``make test`` runs a bounded number of examples per property (the ``default`` Hypothesis profile);
``make fuzz`` runs the same properties far longer (the ``fuzz`` profile, see tests/conftest.py).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import example, given
from hypothesis import strategies as st

from batch_layer.ingest import REASON, parse_record_batch
from headwater.app_checks import HOSTILE_LINES
from headwater.apps.als.events import ALSFormat
from headwater.input_bounds import FORBIDDEN_IN_IDS, InputBounds
from headwater.input_format import InputSchema, SchemaCSVFormat, safe_parse
from headwater.kafka_records import records_to_arrow
from tests.plugin_app.state import KeyValueFormat

BOUNDS = InputBounds(max_line_bytes=2048, max_id_length=40, max_abs_strength=1e6, max_abs_feature=1e9,
                     min_timestamp_ms=0, max_timestamp_ms=4_102_444_800_000)
FORMATS = {
    "als": ALSFormat(BOUNDS),
    # numeric only: clean batches take the Arrow fast path
    "numeric": SchemaCSVFormat(InputSchema(["a", "b", "c"]), BOUNDS),
    "mixed": SchemaCSVFormat(InputSchema(["id", "x", "colour", "note", "label"], ids=["id"],
                                         categorical=["colour", "label"], ignored=["note"], target="label"), BOUNDS),
    "plugin": KeyValueFormat(BOUNDS),
}

# Values that broke or could break a parser: deep nesting, overflowing numbers, odd digits, quotes,
# control characters, lone surrogates, long ids; and the contract checks' whole lines.
HOSTILE_FIELDS = HOSTILE_LINES + [
    "[" * 1200, "[" * 1200 + "]" * 1200, "]", "[[1]]", "{}", "1e999", "-1e999", "1e300", "nan", "inf", "9" * 20,
    "²", "١٢", "1_000", "0x10", " ", "", '"', '""', '"a,b"', "\x00", "\ud800", "\n", "\r",
    "é" * 41, "u" * 41, "true", "null", "-0", "1e-400", "4102444800001", "-1"]
NORMAL_FIELDS = ["u1", "i2", "red", "1", "2.5", "-3", "1700000000000", "0", "blue"]

any_char = st.characters(blacklist_categories=())  # surrogates included
field = st.one_of(st.sampled_from(HOSTILE_FIELDS), st.sampled_from(NORMAL_FIELDS), st.text(any_char, max_size=12))
csv_line = st.lists(field, min_size=0, max_size=6).map(",".join)
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(any_char, max_size=8),
              st.sampled_from(NORMAL_FIELDS)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=8)
json_line = st.lists(json_value, max_size=6).map(lambda values: json.dumps(values, allow_nan=True))
line = st.one_of(st.sampled_from(HOSTILE_FIELDS), csv_line, json_line, st.text(any_char, max_size=300))
lines = st.lists(line, max_size=25)


def check_contract(fmt, given_lines: list[str]):
    parsed = safe_parse(fmt, given_lines)
    kept = parsed.table.column("line_index").to_pylist()
    refused = [i for i, _ in parsed.rejected]
    assert sorted(kept + refused) == list(range(len(given_lines)))
    assert kept == sorted(kept)
    assert all(isinstance(reason, str) and reason for _, reason in parsed.rejected)
    parsed.table.to_pylist()  # every value is a valid Arrow value (e.g. no lone surrogate)
    return parsed


def check_bounds(table: pa.Table) -> None:
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_string(column.type):
            for value in column.to_pylist():
                assert value is None or (len(value) <= BOUNDS.max_id_length and not FORBIDDEN_IN_IDS.search(value))
        elif pa.types.is_floating(column.type):
            limit = BOUNDS.max_abs_strength if name == "strength" else BOUNDS.max_abs_feature
            assert all(v is None or (math.isfinite(v) and abs(v) <= limit) for v in column.to_pylist())
        elif name == "event_time_ms":
            assert all(v is None or BOUNDS.min_timestamp_ms <= v <= BOUNDS.max_timestamp_ms
                       for v in column.to_pylist())


@given(lines)
@example(HOSTILE_FIELDS)
def test_every_format_parses_any_text_into_rows_and_rejections(given_lines):
    for fmt in FORMATS.values():
        check_bounds(check_contract(fmt, given_lines).table)


@given(lines)
@example(HOSTILE_FIELDS)
def test_a_line_parses_alike_alone_and_in_a_batch(given_lines):
    """Batches may take a fast path (SchemaCSVFormat's Arrow reader): its answer must be the loop's."""
    for fmt in (FORMATS["numeric"], FORMATS["mixed"], FORMATS["als"]):
        together = fmt.parse(given_lines)
        rows = together.table.to_pylist()
        reasons = dict(together.rejected)
        by_index = {row.pop("line_index"): row for row in rows}
        for i, text in enumerate(given_lines):
            alone = fmt.parse([text])
            if i in reasons:
                assert alone.rejected == [(0, reasons[i])]
            else:
                only = alone.table.to_pylist()
                assert len(only) == 1 and {k: v for k, v in only[0].items() if k != "line_index"} == by_index[i]


@given(st.lists(st.one_of(st.none(), st.binary(max_size=200), line.map(lambda t: t.encode("utf-8", "replace"))),
                min_size=1, max_size=25))
def test_ingest_parses_any_kafka_record_bytes(values):
    """Kafka values as the source decodes them (invalid UTF-8 becomes U+FFFD), through ingest's parsing step."""
    records = records_to_arrow([_Record(v, offset) for offset, v in enumerate(values)])
    for fmt in (FORMATS["als"], FORMATS["mixed"]):
        parsed = parse_record_batch(records, fmt)
        assert parsed.num_rows == len(values)
        reasons = parsed.column(REASON)
        rejected = pc.is_valid(reasons).to_numpy(zero_copy_only=False)
        assert all(reasons.to_pylist()[i] for i in np.flatnonzero(rejected))
        none_rows = [i for i, v in enumerate(values) if v is None]
        assert all(rejected[none_rows])
        check_bounds(parsed.filter(pc.invert(pc.is_valid(reasons))).select(fmt.schema.names))


class ALSLoopOnly(ALSFormat):
    def _parse_plain(self, given_lines):
        return None, list(range(len(given_lines)))


class SchemaLoopOnly(SchemaCSVFormat):
    def _parse_clean_csv(self, given_lines):
        return None


@given(st.lists(st.one_of(csv_line, st.lists(st.sampled_from(NORMAL_FIELDS + [" ", "", "1e5", "+.5", "5."]),
                                             min_size=2, max_size=4).map(",".join)), max_size=25))
@example(["u1,i1,1e99", "u1,i1,,", "u1,i1, 2 ,", " u1 , i1 ,+.5, 17", "u1,i1,5.,007", "u1,i1,1,-0"])
def test_the_vectorised_paths_answer_as_the_line_loops_do(given_lines):
    pairs = [(FORMATS["als"], ALSLoopOnly(BOUNDS)),
             (FORMATS["mixed"], SchemaLoopOnly(FORMATS["mixed"].input_schema, BOUNDS)),
             (FORMATS["numeric"], SchemaLoopOnly(FORMATS["numeric"].input_schema, BOUNDS))]
    for fast, loop in pairs:
        got, want = fast.parse(given_lines), loop.parse(given_lines)
        assert got.table.to_pydict() == want.table.to_pydict()
        assert got.rejected == want.rejected


class _Record:
    topic, partition, key, timestamp = "t.input", 0, None, 1_700_000_000_000

    def __init__(self, value, offset):
        self.value, self.offset = value, offset


class Raises:
    """A format that breaks the contract: it raises on some lines and drops others."""

    schema = pa.schema([("text", pa.string())])

    def parse(self, given_lines):
        if any("boom" in text for text in given_lines):
            raise RuntimeError("boom")
        kept = [i for i, text in enumerate(given_lines) if "drop" not in text]
        return _parsed(kept, [given_lines[i] for i in kept])


def _parsed(index, texts):
    from headwater.input_format import ParsedLines

    return ParsedLines(pa.table({"line_index": pa.array(index, pa.int32()), "text": pa.array(texts, pa.string())}), [])


def test_safe_parse_holds_a_broken_format_to_the_contract():
    parsed = safe_parse(Raises(), ["a", "boom", "drop me", "b"])
    assert parsed.table.to_pydict() == {"line_index": [0, 3], "text": ["a", "b"]}
    assert parsed.rejected == [(1, "RuntimeError: boom"),
                               (2, "the input format returned neither a row nor a reason for this line")]


def test_the_poison_lines_of_issue_9_are_rejected_with_reasons():
    fmt = ALSFormat()
    poison = ["[" * 3000 + ",i1", "u1,i1,1,99999999999999999999", "u1,i1,1e300", "u" * 5000 + ",i1",
              '["\\ud800", "i1"]', "u1,i1,1e999", "u1,i1,1,1e400"]
    parsed = fmt.parse(poison)
    assert parsed.table.num_rows == 0
    reasons = [reason for _, reason in parsed.rejected]
    assert reasons[0] == "nested too deeply to parse"
    assert reasons[1].startswith("timestamp must be in [0, 4102444800000] ms")
    assert reasons[2].startswith("strength must be within ±1e+06")
    assert reasons[3].startswith("user is longer than 256 characters")
    assert reasons[4].startswith("user contains the control character or lone surrogate")
    assert reasons[5] == "strength must be finite, got '1e999'"
    assert reasons[6] == "timestamp is not an integer: '1e400'"


def test_bounds_come_from_the_config(make_config):
    config = make_config(**{"input.max-id-length": 3, "input.max-line-bytes": 20})
    fmt = ALSFormat.from_config(config)
    reasons = [reason for _, reason in fmt.parse(["abcd,i1", "u1,i1,1," + "1" * 20]).rejected]
    assert reasons == ["user is longer than 3 characters (headwater.input.max-id-length): 'abcd'",
                       "the line has 28 bytes, more than 20 (headwater.input.max-line-bytes)"]
