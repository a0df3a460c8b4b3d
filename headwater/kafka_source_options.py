"""The ``headwater-kafka`` source's options, parsed and checked once on the driver.

Checked when the query starts, on the driver, so a bad option stops the query with its name and value
before any task runs; option names are matched case-insensitively, as Spark's own sources match them.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from headwater.kafka_settings import KafkaSettings


@dataclass(frozen=True)
class KafkaSourceOptions:
    """The source's options, checked once; errors name the option and the bad value.

    >>> opts = KafkaSourceOptions.from_options({"bootstrap.servers": "h:9092", "topic": "t",
    ...     "startingOffsets": '{"t": {"0": 5, "1": -2}}', "maxRecordsPerTrigger": "1000"})
    >>> opts.starting_offsets, opts.max_records_per_trigger, opts.fail_on_data_loss
    ({0: 5, 1: -2}, 1000, True)
    >>> KafkaSourceOptions.from_options({"bootstrap.servers": "h:9092", "topic": "t", "pollTimeoutMs": "0"})
    Traceback (most recent call last):
    ...
    ValueError: The 'pollTimeoutMs' option of the headwater-kafka source must be an int >= 1. Got '0' instead.
    """

    kafka: KafkaSettings
    topic: str
    # "earliest", "latest" or {partition: offset}, where -2 means earliest and -1 latest (as in Spark)
    starting_offsets: str | dict[int, int] = "earliest"
    max_records_per_trigger: int | None = None
    max_records_per_split: int | None = None
    poll_timeout_ms: int = 2000
    fail_on_data_loss: bool = True

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> KafkaSourceOptions:
        given = {k.lower(): v for k, v in options.items()}
        for required in ("bootstrap.servers", "topic"):
            if not given.get(required):
                raise ValueError(f"The headwater-kafka source needs the option '{required}'.")
        return cls(KafkaSettings.from_options(options), given["topic"],
                   _starting_offsets(given.get("startingoffsets", "earliest"), given["topic"]),
                   _positive_int(given, "maxRecordsPerTrigger"), _positive_int(given, "maxRecordsPerSplit"),
                   _positive_int(given, "pollTimeoutMs") or cls.poll_timeout_ms,
                   _boolean(given, "failOnDataLoss", cls.fail_on_data_loss))


def _boolean(given: Mapping[str, str], option: str, default: bool) -> bool:
    raw = given.get(option.lower())
    if raw is None:
        return default
    if str(raw).lower() not in ("true", "false"):
        raise ValueError(f"The '{option}' option of the headwater-kafka source must be 'true' or 'false'. "
                         f"Got {str(raw)!r} instead.")
    return str(raw).lower() == "true"


def _positive_int(given: Mapping[str, str], option: str) -> int | None:
    raw = given.get(option.lower())
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"The '{option}' option of the headwater-kafka source must be an int >= 1. "
                         f"Got {str(raw)!r} instead.")
    return value


def _starting_offsets(raw: str, topic: str) -> str | dict[int, int]:
    if raw in ("earliest", "latest"):
        return raw
    try:
        return {int(p): int(o) for p, o in json.loads(raw)[topic].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(f"The 'startingOffsets' option of the headwater-kafka source must be 'earliest', "
                         f"'latest' or JSON {{\"{topic}\": {{\"<partition>\": offset}}}}. "
                         f"Got {raw!r} instead.") from None

