"""Throughput of the headwater-kafka source: one availableNow query over N short lines on 4 partitions.

Starts its own embedded broker, produces the lines to two topics, then times one query per topic
in the same Spark session (the first is cold: JIT, Python worker start-up; the second is the
figure reported) and prints one JSON object: wall seconds, and the CPU seconds that Spark's JVM,
its Python workers and this driver spent.

    python bench/kafka_source.py [--records 200000] [--partitions 4]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from headwater.config import load_config  # noqa: E402
from headwater.embedded import free_port, start_broker  # noqa: E402
from headwater.kafka_admin import ensure_topics, true_end_offsets
from headwater.kafka_producer import LineProducer  # noqa: E402
from headwater.spark import get_spark  # noqa: E402


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU seconds of a process, its live descendants and their reaped children (Linux /proc).

    The machine is shared, so wall time alone says little; records per CPU second does not depend
    on what else runs.
    """
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in stats.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    ticks = sum(stats[pid][1] for pid in tree if pid in stats)
    own = os.times()
    return ticks / os.sysconf("SC_CLK_TCK") + own.user + own.system


def produce(bootstrap: str, topic: str, records: int, partitions: int) -> float:
    """Produce ``records`` ALS-style lines and return the seconds it took."""
    ensure_topics(bootstrap, {topic: partitions})
    started = time.perf_counter()
    with LineProducer(bootstrap) as producer:
        producer.send_lines(topic, (f"u{i % 5000},i{i % 700},1.0" for i in range(records)))
    seconds = time.perf_counter() - started
    assert sum(true_end_offsets(bootstrap, topic).values()) == records
    return seconds


def time_query(spark, config, bootstrap: str, topic: str, checkpoint: Path) -> dict:
    """One availableNow query counting every record: wall and CPU seconds, records per batch."""
    counts = []
    jvm_pid = spark.sparkContext._gateway.proc.pid
    cpu_before, started = tree_cpu_seconds(jvm_pid), time.perf_counter()
    query = (spark.readStream.format("headwater-kafka")
             .option("bootstrap.servers", bootstrap).option("topic", topic)
             .option("startingOffsets", "earliest")
             .option("maxRecordsPerTrigger", config.get("headwater.kafka.max-records-per-trigger"))
             .option("maxRecordsPerSplit", config.get("headwater.kafka.max-records-per-split"))
             .load().writeStream.foreachBatch(lambda df, _: counts.append(df.count()))
             .option("checkpointLocation", str(checkpoint))
             .trigger(availableNow=True).start())
    query.awaitTermination()
    seconds = time.perf_counter() - started
    cpu_seconds = tree_cpu_seconds(jvm_pid) - cpu_before
    return {"records": sum(counts), "batches": len(counts), "seconds": round(seconds, 2),
            "records_per_s": round(sum(counts) / seconds), "cpu_seconds": round(cpu_seconds, 2),
            "records_per_cpu_s": round(sum(counts) / cpu_seconds),
            "trigger_durations_ms": [progress["durationMs"] for progress in query.recentProgress]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
        port = free_port()
        broker = start_broker("127.0.0.1", port, Path(tmp) / "broker.log")
        bootstrap = f"127.0.0.1:{port}"
        try:
            produce_seconds = produce(bootstrap, "bench.cold", args.records, args.partitions)
            produce(bootstrap, "bench.warm", args.records, args.partitions)
            config = load_config(overrides=["headwater.id=bench", "headwater.app=als"])
            spark = get_spark(config)
            # a fresh JVM compiles as it goes and Python workers start: the first query pays for
            # both; a long-running ingest job runs like the second
            cold = time_query(spark, config, bootstrap, "bench.cold", Path(tmp) / "cold")
            warm = time_query(spark, config, bootstrap, "bench.warm", Path(tmp) / "warm")
            spark.stop()
        finally:
            broker.stop()
    print(json.dumps({"bench": "kafka_source", "partitions": args.partitions, **warm,
                      "cold_query": {k: cold[k] for k in ("records", "seconds", "records_per_s", "cpu_seconds")},
                      "produce_records_per_s": round(args.records / produce_seconds)}))


if __name__ == "__main__":
    main()
