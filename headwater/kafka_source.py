"""``headwater-kafka``: a Structured Streaming source for one Kafka topic, as a PySpark Python data source.

Spark's own Kafka connector comes from Maven, which this project cannot count on, so the source is
built on kafka-python: the driver-side reader finds offsets, executors read offset ranges.
Offsets are ``{"<partition>": next_offset}`` and live in the query's checkpoint, which gives the
same exactly-once guarantee as Spark's Kafka source: a batch is a fixed offset range, replayed
identically after a failure.

    spark.readStream.format("headwater-kafka").options(**config.kafka.as_options()) \\
        .option("topic", "demo.input").option("startingOffsets", "earliest") \\
        .option("maxRecordsPerTrigger", 500000).load()

TLS and SASL settings come as ``kafka.<kafka-python argument>`` options
(:meth:`headwater.kafka_settings.KafkaSettings.as_options`), so the executors' consumers connect as
the driver's do; Spark redacts the password options in plans and progress reports.

Partitions seen for the first time start at offset 0. The options are
:class:`~headwater.kafka_source_options.KafkaSourceOptions`; the offsets' checkpoint form and the
trigger budget are in :mod:`headwater.kafka_offsets`, the records' Arrow form in :mod:`headwater.kafka_records`.

Data loss, as Spark's Kafka source sees it, fails the query unless ``failOnDataLoss`` is ``false``
(``headwater.kafka.fail-on-data-loss``): records the query has not read yet that are gone from the
topic. Two ways it shows:

- the checkpointed offset lies *below* the partition's first offset: retention (or a DeleteRecords)
  removed records before they were read. With ``failOnDataLoss=false`` the query goes on from the
  first offset still there.
- the checkpointed offset lies *beyond* the partition's end: the topic was recreated (the embedded
  broker keeps topics in memory, so a broker restart empties them). With ``failOnDataLoss=false``
  the partition restarts from offset 0: the batch's end offset is then *below* its start offset,
  which :meth:`KafkaStreamReader.partitions` reads as "from 0 to end". The batch stays a fixed,
  replayable range, Spark is never handed an offset it cannot use, and the records written after
  the restart are delivered. Not detectable: a recreated topic that already holds more records
  than the checkpointed offset (its first records are then skipped).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import pyarrow as pa
from kafka import TopicPartition
from kafka.errors import KafkaError
from pyspark.sql.datasource import DataSource, DataSourceStreamReader
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadLimit, ReadMaxRows, SupportsTriggerAvailableNow
from pyspark.sql.types import StructType

from headwater.kafka_admin import (
    RESET_PROBE_TIMEOUT_MS,
    beginning_offsets,
    new_consumer,
    new_probe_consumer,
    true_end_offsets,
)
from headwater.kafka_offsets import OffsetRange, decode_offsets, encode_offsets, fair_shares
from headwater.kafka_records import SCHEMA, records_to_arrow
from headwater.kafka_source_options import KafkaSourceOptions

log = logging.getLogger(__name__)

ARROW_CHUNK_ROWS = 20_000
# read() checks whether a range's records still exist after this many polls without progress.
MAX_STALLED_POLLS = 3


class DataLossError(RuntimeError):
    """Records the query has not read are gone from the topic (and ``failOnDataLoss`` is true)."""

    def __init__(self, what: str, continue_with: str):
        super().__init__(f"{what}. Set headwater.kafka.fail-on-data-loss = false (the source's option "
                         f"failOnDataLoss) to {continue_with} and lose them; otherwise restore the records.")


class KafkaDataSource(DataSource):
    """Streams one Kafka topic's records as ``key, value, topic, partition, offset, timestamp``.

    >>> KafkaDataSource.name()
    'headwater-kafka'
    >>> KafkaDataSource({}).schema().fieldNames()
    ['key', 'value', 'topic', 'partition', 'offset', 'timestamp']
    """

    @classmethod
    def name(cls) -> str:
        return "headwater-kafka"

    def schema(self) -> StructType:
        return SCHEMA

    def streamReader(self, schema: StructType) -> KafkaStreamReader:
        return KafkaStreamReader(KafkaSourceOptions.from_options(self.options))



class KafkaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Plans offset ranges on the driver and reads them on executors.

    Pickled to executors, so it holds only options until the driver first needs a consumer.
    """

    def __init__(self, options: KafkaSourceOptions) -> None:
        self.options = options
        self._consumer = None
        self._available_now_ends: dict[int, int] | None = None
        self._last_true_ends: dict[int, int] | None = None
        self._topic_missing = False

    def _driver_consumer(self):
        if self._consumer is None:
            self._consumer = new_probe_consumer(self.options.kafka)
        return self._consumer

    def _true_ends(self) -> dict[int, int]:
        self._last_true_ends = true_end_offsets(self._driver_consumer(), self.options.topic)
        return self._last_true_ends

    def initialOffset(self) -> dict:
        wanted = self.options.starting_offsets
        if wanted == "earliest":
            return encode_offsets(dict.fromkeys(self._true_ends(), 0))
        ends = self._true_ends()
        if wanted == "latest":
            return encode_offsets(ends)
        chosen = {p: wanted.get(p, -2) for p in ends}
        return encode_offsets({p: ends[p] if o == -1 else max(o, 0) for p, o in chosen.items()})

    def getDefaultReadLimit(self) -> ReadLimit:
        limit = self.options.max_records_per_trigger
        return ReadAllAvailable() if limit is None else ReadMaxRows(limit)

    def prepareForTriggerAvailableNow(self) -> None:
        # availableNow reads what exists now, in as many batches as maxRecordsPerTrigger needs
        self._available_now_ends = self._true_ends()

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        try:
            return self._latest_offset(start, limit)
        except KafkaError as exc:
            # the broker is away (restarting, a network cut): no new batch now; a later trigger asks again
            log.warning("topic %s: cannot read offsets (%s: %s); no new batch until the broker answers",
                        self.options.topic, type(exc).__name__, exc)
            self._close_driver_consumer()
            return start

    def _close_driver_consumer(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception:  # closing a consumer of a broker that is gone may fail; it is dropped anyway
                log.debug("closing the offset consumer failed", exc_info=True)
            self._consumer = None

    def _latest_offset(self, start: dict, limit: ReadLimit) -> dict:
        starts = decode_offsets(start)
        ends = self._true_ends()
        if not ends:
            if starts and not self._topic_missing:
                log.warning("topic %s does not exist (any more); waiting for it, at offsets %s",
                            self.options.topic, starts)
            self._topic_missing = True
            return start
        self._topic_missing = False
        suspects = [p for p in ends if starts.get(p, 0) > ends[p]]
        if suspects:
            ends.update(true_end_offsets(self._driver_consumer(), self.options.topic, suspects,
                                         RESET_PROBE_TIMEOUT_MS))
        firsts = self._first_offsets(self._driver_consumer(), list(ends))
        begins, available = {}, {}
        for p, end in ends.items():
            begins[p] = starts.get(p, 0)
            if begins[p] > end:
                self._data_lost(f"topic {self.options.topic} partition {p}: the checkpointed offset {begins[p]} is "
                                f"beyond the partition's end {end}: the topic was recreated (e.g. by a restart of "
                                f"the in-memory embedded broker) and the records before its end are gone",
                                "restart the partition from offset 0")
                begins[p] = 0
            elif begins[p] < firsts.get(p, 0):
                self._data_lost(f"topic {self.options.topic} partition {p}: offsets {begins[p]} to {firsts[p] - 1} "
                                f"were deleted (retention?) before the query read them",
                                f"continue from offset {firsts[p]}")
                begins[p] = firsts[p]
            if self._available_now_ends is not None:
                end = min(end, self._available_now_ends.get(p, begins[p]))
            available[p] = max(end - begins[p], 0)
        if isinstance(limit, ReadMaxRows):
            available = fair_shares(available, limit.max_rows)
        # partitions gone from the metadata keep their offsets
        return encode_offsets({**starts, **{p: begins[p] + available[p] for p in ends}})

    def _first_offsets(self, consumer, partitions: list[int]) -> dict[int, int]:
        """The first offset each partition still holds (records below it were deleted)."""
        return beginning_offsets(consumer, self.options.topic, partitions)

    def _data_lost(self, what: str, continue_with: str) -> None:
        if self.options.fail_on_data_loss:
            raise DataLossError(what, continue_with)
        log.warning("%s; failOnDataLoss is false: going on (%s)", what, continue_with)

    def reportLatestOffset(self) -> dict | None:
        return None if self._last_true_ends is None else encode_offsets(self._last_true_ends)

    def partitions(self, start: dict, end: dict) -> list[OffsetRange]:
        starts, ends = decode_offsets(start), decode_offsets(end)
        split = self.options.max_records_per_split
        ranges = []
        for p, stop in ends.items():
            # an end below the start marks a partition restarted from 0 (see the module docstring)
            begin = starts.get(p, 0) if stop >= starts.get(p, 0) else 0
            step = split or max(stop - begin, 1)
            ranges += [OffsetRange(self.options.topic, p, a, min(a + step, stop)) for a in range(begin, stop, step)]
        return ranges

    def read(self, partition: OffsetRange) -> Iterator[pa.RecordBatch]:
        # CRC checks run in pure Python in kafka-python and cost ~15% of the read; TCP already
        # checksums the transfer, and the broker validated each batch when it was produced.
        consumer = new_consumer(self.options.kafka, check_crcs=False)
        tp = TopicPartition(partition.topic, partition.partition)
        try:
            consumer.assign([tp])
            first = self._first_offsets(consumer, [partition.partition])[partition.partition]
            if first > partition.start:  # deleted since the batch was planned
                self._data_lost(f"topic {partition.topic} partition {partition.partition}: offsets {partition.start} "
                                f"to {min(first, partition.end) - 1} were deleted (retention?) before this batch "
                                "read them", "read what is left of the range")
            consumer.seek(tp, partition.start)
            chunk, stalled = [], 0
            while (position := consumer.position(tp)) < partition.end:
                records = consumer.poll(timeout_ms=self.options.poll_timeout_ms,
                                        max_records=ARROW_CHUNK_ROWS).get(tp, [])
                stalled = stalled + 1 if consumer.position(tp) == position else 0
                if stalled >= MAX_STALLED_POLLS:
                    if self._range_is_gone(partition):
                        break
                    stalled = 0
                chunk += [r for r in records if partition.start <= r.offset < partition.end]
                if len(chunk) >= ARROW_CHUNK_ROWS:
                    yield records_to_arrow(chunk)
                    chunk = []
            if chunk:
                yield records_to_arrow(chunk)
        finally:
            consumer.close()

    def _range_is_gone(self, partition: OffsetRange) -> bool:
        """After polls without progress: True (and a warning) if the partition now ends before the range.

        Only then are the records gone (topic recreated); otherwise the broker is merely slow and
        giving up would lose records, so the caller keeps polling (also while the broker is away).
        """
        try:
            end = true_end_offsets(self.options.kafka, partition.topic, [partition.partition],
                                   RESET_PROBE_TIMEOUT_MS)
        except KafkaError as exc:
            log.warning("topic %s partition %d: cannot read its end (%s); polling on", partition.topic,
                        partition.partition, type(exc).__name__)
            return False
        if partition.partition not in end:  # the topic is gone for now (a restarted broker recreates it)
            return False
        if end[partition.partition] >= partition.end:
            return False
        self._data_lost(f"topic {partition.topic} partition {partition.partition}: offsets {partition.start} to "
                        f"{partition.end - 1} are not available any more (the partition ends at "
                        f"{end[partition.partition]}; topic recreated?)", "end this range")
        return True

    def stop(self) -> None:
        self._close_driver_consumer()
