"""The ingest query's checkpoint and the Delta tables must tell the same story: checked before the query starts.

Each ingest batch commits to ``events`` (also when it has no valid row) with the Delta ``txn``
(``<id>-ingest``, batch id) and, in the commit's metadata, the batch id and the input-topic offsets
the batch ends at (from the checkpoint's offset log). Spark's checkpoint holds the same two facts: the
offset log (``offsets/<batch>``, written before a batch runs) and the commit log (``commits/<batch>``,
written after). After a crash the table is at most one batch ahead of the commit log (the batch that
ran but was not committed yet: Spark replays it and the ``txn`` makes the replay add nothing).
Anything else means one of them was restored from an older copy or belongs to another stream, and
starting the query would silently skip or duplicate events, so start-up stops with what to do:

>>> log = CheckpointLog(planned=[0, 1, 2, 3, 4, 5], committed=[0, 1, 2, 3, 4, 5], offsets={})
>>> check_agreement(log, TableIngestPoint(batch=2, offsets=None, versioned=True), "ck", "events")
Traceback (most recent call last):
...
batch_layer.ingest_checkpoint.CheckpointMismatchError: the events table events holds ingest batches up to 2 \
but the checkpoint ck has committed batches up to 5: the table is older than the checkpoint (restored from a \
backup?), and the events of batches 3 to 5 are not in it. Restore the table's newer version, or roll the \
checkpoint back to batch 2 by deleting ck/offsets/{3..5} and ck/commits/{3..5} (and their .<batch>.crc \
files), so that those batches are read from Kafka again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from headwater.kafka_offsets import decode_offsets

# commit metadata of an ingest batch
BATCH_KEY = "headwater.ingest_batch"
OFFSETS_KEY = "headwater.input_offsets"
# how far back the table's history is searched for the newest ingest commit
HISTORY_LIMIT = 100


class CheckpointMismatchError(RuntimeError):
    """The checkpoint and the tables disagree about which batches are ingested; the message says what to do."""


class CheckpointMissingError(CheckpointMismatchError):
    """The tables hold ingested batches but the query's checkpoint is gone: restarting would skip data."""


@dataclass
class CheckpointLog:
    """The batch ids in a checkpoint's offset log and commit log, and the source offsets of planned batches."""

    planned: list[int]
    committed: list[int]
    offsets: dict[int, dict[int, int]]

    @property
    def last_committed(self) -> int | None:
        return max(self.committed) if self.committed else None


@dataclass
class TableIngestPoint:
    """The newest ingest batch in the events table, its end offsets (None if unrecorded), and whether
    the writer commits every batch (then the table can be checked for being behind the checkpoint)."""

    batch: int | None
    offsets: dict[int, int] | None
    versioned: bool


def check_agreement(log: CheckpointLog, table: TableIngestPoint, checkpoint: str, events_uri: str) -> None:
    """Raise :class:`CheckpointMismatchError` (or its Missing subclass) unless checkpoint and table agree."""
    if table.batch is None and not log.committed:
        return
    if table.batch is not None and not log.planned:
        raise CheckpointMissingError(
            f"{events_uri} holds ingest batches up to {table.batch} but the checkpoint {checkpoint} is "
            f"missing; restore it, or ingest under a new headwater.id")
    done = -1 if table.batch is None else table.batch
    committed = -1 if log.last_committed is None else log.last_committed
    if done > committed + 1:
        raise CheckpointMismatchError(
            f"the checkpoint {checkpoint} has committed batches up to {committed} but the events table "
            f"{events_uri} holds ingest batches up to {done}: the checkpoint is older than the table (restored "
            f"from a backup?); started so, the query would plan batches {committed + 1} to {done} anew and skip "
            "them as already written. Restore the checkpoint that goes with the table, or restore the events "
            f"and rejected tables to their versions of batch {committed} (DeltaTable.restore).")
    if done < committed and table.versioned:
        raise CheckpointMismatchError(
            f"the events table {events_uri} holds ingest batches up to {done} but the checkpoint {checkpoint} "
            f"has committed batches up to {committed}: the table is older than the checkpoint (restored from a "
            f"backup?), and the events of batches {done + 1} to {committed} are not in it. Restore the table's "
            f"newer version, or roll the checkpoint back to batch {done} by deleting "
            f"{checkpoint}/offsets/{{{done + 1}..{committed}}} and {checkpoint}/commits/{{{done + 1}..{committed}}} "
            "(and their .<batch>.crc files), so that those batches are read from Kafka again.")
    planned = log.offsets.get(done)
    if table.offsets is not None and planned is not None and planned != table.offsets:
        raise CheckpointMismatchError(
            f"batch {done} ends at input offsets {table.offsets} in the events table {events_uri} but at "
            f"{planned} in the checkpoint {checkpoint}: they belong to different streams. Restore the checkpoint "
            "that goes with the table, or ingest under a new headwater.id.")


def read_checkpoint_log(spark, checkpoint: str, offsets_of: tuple[int, ...] = ()) -> CheckpointLog:
    """The offset and commit logs of ``checkpoint`` (any Hadoop file system), with the offsets of ``offsets_of``."""
    fs, path = _hadoop(spark, checkpoint)
    planned, committed = _batch_ids(spark, fs, f"{checkpoint}/offsets"), _batch_ids(spark, fs, f"{checkpoint}/commits")
    offsets = {}
    for batch in offsets_of:
        if batch in planned:
            offsets[batch] = source_offsets(_read_text(spark, fs, f"{checkpoint}/offsets/{batch}"))
    return CheckpointLog(planned, committed, offsets)


def planned_offsets(spark, checkpoint: str, batch_id: int) -> dict[int, int] | None:
    """The input-topic offsets batch ``batch_id`` ends at, from the checkpoint's offset log."""
    return read_checkpoint_log(spark, checkpoint, (batch_id,)).offsets.get(batch_id)


def source_offsets(text: str) -> dict[int, int]:
    """The source's offsets from an offset-log file (``v1``, the batch metadata, one line per source).

    >>> source_offsets('v1\\n{"batchWatermarkMs":0}\\n{"0":5,"1":7}\\n')
    {0: 5, 1: 7}
    """
    lines = text.strip().splitlines()
    return decode_offsets(json.loads(lines[2]))


def table_ingest_point(table, app_id: str) -> TableIngestPoint:
    """Where the events table's ingest stands, from its ``txn`` and its newest ingest commit's metadata."""
    if table is None:
        return TableIngestPoint(None, None, False)
    batch = table.transaction_version(app_id)
    for commit in table.history(HISTORY_LIMIT):
        if BATCH_KEY in commit:
            offsets = commit.get(OFFSETS_KEY)
            recorded = decode_offsets(json.loads(offsets)) if offsets and int(commit[BATCH_KEY]) == batch else None
            return TableIngestPoint(batch, recorded, True)
    return TableIngestPoint(batch, None, False)


def commit_metadata(batch_id: int, end_offsets: dict[int, int] | None) -> dict[str, str]:
    metadata = {BATCH_KEY: str(batch_id)}
    if end_offsets is not None:
        metadata[OFFSETS_KEY] = json.dumps({str(p): o for p, o in sorted(end_offsets.items())})
    return metadata


def _hadoop(spark, uri: str):
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark._jsc.hadoopConfiguration()), path


def _batch_ids(spark, fs, directory: str) -> list[int]:
    path = spark._jvm.org.apache.hadoop.fs.Path(directory)
    if not fs.exists(path):
        return []
    names = (status.getPath().getName() for status in fs.listStatus(path))
    return sorted(int(name) for name in names if name.isdigit())


def _read_text(spark, fs, uri: str) -> str:
    stream = fs.open(spark._jvm.org.apache.hadoop.fs.Path(uri))
    try:
        return spark._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


__all__ = ["CheckpointLog", "CheckpointMismatchError", "CheckpointMissingError", "TableIngestPoint",
           "check_agreement", "commit_metadata", "planned_offsets", "read_checkpoint_log", "table_ingest_point"]
