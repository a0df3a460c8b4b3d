"""The constraint language of configuration values (scikit-learn's ``_parameter_constraints``, for config paths).

A constraint's ``check(value)`` returns None when the value is acceptable, else the problem in words
("must be an int in the range [1, inf)"); :func:`validate` turns the first problem into a
:class:`ConfigError` that names the key, the file that set it and the value.

>>> Interval(int, 1).check(0)
'must be an int in the range [1, inf)'
>>> ListOf(Options(("gini", "entropy"))).check(["gini"]) is None
True
>>> Optional(Interval(float, 0, 1)).check(None) is None
True
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A configuration key is unknown, missing or has a bad value; the message names key and file."""


@dataclass(frozen=True)
class Interval:
    """A number of ``kind`` (int or float) in [low, high] (a bound of None is open)."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed_low: bool = True
    closed_high: bool = True

    def check(self, value: Any) -> str | None:
        kinds = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            return f"must be {self.describe()}"
        if self.low is not None and (value < self.low or (value == self.low and not self.closed_low)):
            return f"must be {self.describe()}"
        if self.high is not None and (value > self.high or (value == self.high and not self.closed_high)):
            return f"must be {self.describe()}"
        return None

    def describe(self) -> str:
        name = "an int" if self.kind is int else "a number"
        lo = "-inf" if self.low is None else self.low
        hi = "inf" if self.high is None else self.high
        left = "[" if self.closed_low and self.low is not None else "("
        right = "]" if self.closed_high and self.high is not None else ")"
        return f"{name} in the range {left}{lo}, {hi}{right}"


def option_name(value: Any) -> Any:
    """The canonical spelling of a strategy name: lower case, ``_`` as ``-`` (Oryx writes ``DAVIES_BOULDIN``).

    >>> option_name("DAVIES_BOULDIN"), option_name("k-means||")
    ('davies-bouldin', 'k-means||')
    """
    return value.strip().lower().replace("_", "-") if isinstance(value, str) else value


@dataclass(frozen=True)
class Options:
    """One of a fixed set of strings; with ``any_case``, in any case and with ``_`` for ``-``
    (read it back with :func:`option_name`)."""

    values: tuple[str, ...]
    any_case: bool = False

    def check(self, value: Any) -> str | None:
        if (option_name(value) if self.any_case else value) not in self.values:
            return "must be one of " + ", ".join(repr(v) for v in self.values) + (
                " (any case)" if self.any_case else "")
        return None


@dataclass(frozen=True)
class OfType:
    """A value of the given Python type(s)."""

    kinds: tuple[type, ...]
    description: str

    def check(self, value: Any) -> str | None:
        if isinstance(value, bool) and bool not in self.kinds:
            return f"must be {self.description}"
        return None if isinstance(value, self.kinds) else f"must be {self.description}"


@dataclass(frozen=True)
class ListOf:
    """A non-empty list whose items all satisfy ``item``."""

    item: Any
    allow_empty: bool = False

    def check(self, value: Any) -> str | None:
        if not isinstance(value, list) or (not value and not self.allow_empty):
            return "must be a " + ("" if self.allow_empty else "non-empty ") + "list"
        for v in value:
            problem = self.item.check(v)
            if problem:
                return f"must be a list whose items each {problem.removeprefix('must ')}"
        return None


@dataclass(frozen=True)
class HyperParam:
    """A hyperparameter's values to try: a scalar (fixed, as Oryx), a non-empty list (discrete values), or,
    for numbers, a range ``{min, max}`` with an optional ``scale`` of ``linear`` (default) or ``log``.

    >>> HyperParam(Interval(float, 0)).check({"min": 0.001, "max": 0.1, "scale": "log"}) is None
    True
    >>> HyperParam(Interval(int, 1)).check(10) is None
    True
    """

    item: Any

    def check(self, value: Any) -> str | None:
        if isinstance(value, list):
            return ListOf(self.item).check(value)
        if isinstance(value, dict):
            return self._check_range(value)
        problem = self.item.check(value)
        return None if problem is None else f"{problem}, a list of such values or a range {{min, max}}"

    def _check_range(self, value: dict) -> str | None:
        if not isinstance(self.item, Interval):
            return "must be a value or a list of values (a range {min, max} is for numbers)"
        if set(value) - {"min", "max", "scale"} or "min" not in value or "max" not in value:
            return "must be a range with keys min, max and optionally scale"
        for bound in ("min", "max"):
            problem = self.item.check(value[bound])
            if problem:
                return f"must be a range whose {bound} {problem.removeprefix('must ')}"
        if value["min"] > value["max"]:
            return "must be a range whose min is at most its max"
        scale = value.get("scale", "linear")
        if scale not in ("linear", "log"):
            return "must be a range whose scale is 'linear' or 'log'"
        if scale == "log" and value["min"] <= 0:
            return "must be a range whose min is above 0 on a log scale"
        return None


@dataclass(frozen=True)
class Optional:
    """None, or a value satisfying ``inner``."""

    inner: Any

    def check(self, value: Any) -> str | None:
        if value is None:
            return None
        problem = self.inner.check(value)
        return None if problem is None else f"{problem} or null"


@dataclass(frozen=True)
class ContextPath:
    """A URL path prefix: empty, or starting with '/' and made of URL-safe characters."""

    def check(self, value: Any) -> str | None:
        ok = isinstance(value, str) and (value in ("", "/") or (
            value.startswith("/") and "//" not in value and all(c.isalnum() or c in "/-._~" for c in value)))
        return None if ok else "must be '' or a URL path such as '/headwater' (letters, digits, '/-._~')"


@dataclass(frozen=True)
class NonEmptyString:
    def check(self, value: Any) -> str | None:
        return None if isinstance(value, str) and value.strip() else "must be a non-empty string"


STRING = OfType((str,), "a string")
NON_EMPTY_STRING = NonEmptyString()
BOOL = OfType((bool,), "true or false")
STRINGS = ListOf(STRING, allow_empty=True)


def validate(get: Callable[[str], Any], source_of: Callable[[str], str], constraints: Mapping[str, Any],
             is_secret: Callable[[str], bool] = lambda path: False) -> None:
    """Check every constrained path; the first problem is a ConfigError naming key, source and value.

    The value of a secret key is not shown: a typo in a password must not print the password.
    """
    for path, constraint in constraints.items():
        value = get(path)
        problem = constraint.check(value)
        if problem:
            shown = "a value that is not shown (a secret)" if is_secret(path) else repr(value)
            raise ConfigError(f"{path} {problem} in {source_of(path)}, got {shown}")


__all__ = ["BOOL", "NON_EMPTY_STRING", "STRING", "STRINGS", "ConfigError", "ContextPath", "HyperParam", "Interval",
           "ListOf", "OfType", "Optional", "Options", "option_name", "validate"]
