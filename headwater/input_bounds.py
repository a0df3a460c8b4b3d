"""What one input line may hold (``headwater.input.*``): the checks every input format applies to its values.

A value outside the bounds is not an error of the job but of the line: the format rejects that line
with the reason (the ``rejected`` table, a 400 from REST) and goes on. The bounds keep hostile or
broken input from doing damage further on: a 5,000-character id widens every row of the serving
layer's fixed-width numpy id arrays, a rating of 1e300 turns ALS vectors into inf and then NaN, a
point at 1e200 captures a k-means centre, a 20-digit timestamp overflows int64.

>>> bounds = InputBounds(max_id_length=4, max_abs_strength=10.0)
>>> bounds.identifier(" u1 ", "user"), bounds.number("2.5", "strength", bounds.max_abs_strength)
('u1', 2.5)
>>> bounds.identifier("user-1", "user")
Traceback (most recent call last):
...
ValueError: user is longer than 4 characters (headwater.input.max-id-length): 'user-1'
>>> bounds.timestamp("99999999999999999999")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: timestamp must be in [0, 4102444800000] ms ..., got '99999999999999999999'
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

# C0 controls and DEL (a NUL is dropped by numpy's str arrays, a newline splits a CSV answer), and
# lone surrogates (a JSON "\ud800" decodes to one; Arrow and UTF-8 cannot hold it).
FORBIDDEN_IN_IDS = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
# How much of a bad value a reason quotes.
QUOTED_CHARS = 60


def quoted(text: str) -> str:
    """``repr(text)``, cut to :data:`QUOTED_CHARS` characters so a reason stays readable."""
    return repr(text) if len(text) <= QUOTED_CHARS else repr(text[:QUOTED_CHARS]) + f"... ({len(text)} chars)"


@dataclass(frozen=True)
class InputBounds:
    """The limits of ``headwater.input``; the methods parse one value and raise ValueError naming the limit."""

    max_line_bytes: int = 65_536
    max_id_length: int = 256
    max_abs_strength: float = 1e6
    max_abs_feature: float = 1e12
    min_timestamp_ms: int = 0
    max_timestamp_ms: int = 4_102_444_800_000  # 2100-01-01

    @classmethod
    def from_config(cls, config) -> InputBounds:
        s = config.section("headwater.input")
        return cls(s["max-line-bytes"], s["max-id-length"], float(s["max-abs-strength"]),
                   float(s["max-abs-feature"]), s["min-timestamp-ms"], s["max-timestamp-ms"])

    def line(self, line) -> str:
        """The line itself, if it is text of at most ``max-line-bytes`` UTF-8 bytes."""
        if not isinstance(line, str):
            raise ValueError(f"a line must be text, got {type(line).__name__}")
        # a character is at most 4 UTF-8 bytes: only a long line needs encoding to be measured
        if len(line) * 4 > self.max_line_bytes:
            size = len(line.encode("utf-8", "surrogatepass"))
            if size > self.max_line_bytes:
                raise ValueError(f"the line has {size} bytes, more than {self.max_line_bytes} "
                                 "(headwater.input.max-line-bytes)")
        return line

    def identifier(self, text: str, name: str) -> str:
        """An id or category, stripped: at most ``max-id-length`` characters, no control characters."""
        value = text.strip()
        if len(value) > self.max_id_length:
            raise ValueError(f"{name} is longer than {self.max_id_length} characters "
                             f"(headwater.input.max-id-length): {quoted(value)}")
        bad = FORBIDDEN_IN_IDS.search(value)
        if bad is not None:
            raise ValueError(f"{name} contains the control character or lone surrogate {bad.group()!r} "
                             f"at position {bad.start()}")
        return value

    def number(self, text: str, name: str, limit: float) -> float:
        """A finite number of absolute value at most ``limit``."""
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{name} is not a number: {quoted(text)}") from None
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {quoted(text)}")
        if abs(value) > limit:
            key = "max-abs-strength" if name == "strength" else "max-abs-feature"
            raise ValueError(f"{name} must be within ±{limit:g} (headwater.input.{key}), got {quoted(text)}")
        return value

    def timestamp(self, text: str) -> int:
        """Milliseconds since the epoch (an integral number) in [``min-timestamp-ms``, ``max-timestamp-ms``]."""
        try:
            value = int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                raise ValueError(f"timestamp is not an integer: {quoted(text)}") from None
            if not as_float.is_integer():
                raise ValueError(f"timestamp is not an integer: {quoted(text)}") from None
            value = int(as_float)
        if not self.min_timestamp_ms <= value <= self.max_timestamp_ms:
            raise ValueError(f"timestamp must be in [{self.min_timestamp_ms}, {self.max_timestamp_ms}] ms "
                             f"(headwater.input.min/max-timestamp-ms), got {quoted(text)}")
        return value


# the reference.conf defaults, for formats built without a config (doctests, tools)
DEFAULT_BOUNDS = InputBounds()

__all__ = ["DEFAULT_BOUNDS", "FORBIDDEN_IN_IDS", "InputBounds", "quoted"]
