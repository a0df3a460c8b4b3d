"""Ingestion throughput: Kafka -> Delta ``events`` for 300,000 ALS lines on a 4-partition topic.

Starts its own embedded broker and, in a fresh process, first drains a warm-up backlog (50,000
lines: JVM JIT and Python workers warm, as in a long-running ``ingest-stream``), then produces the
measured lines (not timed) and times ``run_ingest(once=True)`` draining them into Delta. Prints one
JSON object; ``cold`` is the warm-up drain, which includes the first query's start-up.

    python bench/ingest.py [--lines 300000] [--profile]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from headwater.config import load_config  # noqa: E402
from headwater.embedded import free_port, start_broker  # noqa: E402

PARTITIONS = 4
WARM_UP = 50_000


def als_line(i: int) -> str:
    return f"u{i % 10007},i{(i * 7919) % 4001},{1 + i % 5}.0,{1_700_000_000_000 + i}"


def overrides(broker: str, root: str, extra: list[str]) -> list[str]:
    return [f"headwater.id=bench{os.getpid()}", "headwater.app=als",
            f'headwater.kafka.bootstrap-servers="{broker}"', f"headwater.kafka.input-partitions={PARTITIONS}",
            f'headwater.storage.root="{root}"', *extra]


def produce(broker: str, topic: str, lines: int, offset: int = 0) -> None:
    from headwater.kafka_admin import ensure_topics
    from headwater.kafka_producer import LineProducer

    ensure_topics(broker, {topic: PARTITIONS})
    with LineProducer(broker) as producer:
        producer.send_lines(topic, (als_line(i) for i in range(offset, offset + lines)))


def tree_cpu_seconds(root: int) -> float:
    """CPU time of ``root`` and its descendants (the Spark JVM, its Python workers), reaped ones too."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(pid)
        times[pid] = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total


def timed_ingest(config_overrides: list[str], profile: bool) -> dict:
    """Run in the child process: build the session, then time the query."""
    from batch_layer.ingest import run_ingest
    from headwater import delta_tables
    from headwater.spark import get_spark

    lines = int(config_overrides[0])
    config = load_config(overrides=config_overrides[1:])
    get_spark(config)
    started = time.perf_counter()
    warm = run_ingest(config, once=True)
    cold = {"events": warm.events, "seconds": round(time.perf_counter() - started, 2)}
    produce(config.get("headwater.kafka.bootstrap-servers"), config.input_topic, lines, offset=WARM_UP)
    session_ready = time.perf_counter()
    cpu_before = tree_cpu_seconds(os.getpid())
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        totals = profiler.runcall(run_ingest, config, True)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    else:
        totals = run_ingest(config, once=True)
    done = time.perf_counter()
    cpu = tree_cpu_seconds(os.getpid()) - cpu_before
    events = delta_tables.read_table_arrow(config.table_uri("events")).num_rows - warm.events
    return {"events": events, "rejected": totals.rejected, "batches": totals.batches,
            "seconds": round(done - session_ready, 2), "cold": cold,
            "events_per_s": round(events / (done - session_ready)),
            # on a shared machine wall time mostly measures the neighbours; the CPU seconds of the
            # driver, JVM and Python workers bound what 2 idle cores would sustain (if kept busy)
            "cpu_seconds": round(cpu, 2), "events_per_cpu_s_x2": round(2 * events / cpu)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--profile", action="store_true", help="cProfile the driver; stats to stderr")
    parser.add_argument("-D", dest="extra", action="append", default=[], help="config override for the run")
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(timed_ingest(args.child, args.profile)), flush=True)
        # The measurement is out. This child (Spark JVM + delta-rs + a producer in one process) can
        # abort in native teardown at interpreter exit ("terminate called without an active
        # exception"); `headwater ingest-stream --once` itself exits 0, so skip the teardown here.
        os._exit(0)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        port = free_port()
        broker_process = start_broker("127.0.0.1", port, Path(tmp) / "broker.log")
        try:
            broker = f"127.0.0.1:{port}"
            settings = overrides(broker, str(Path(tmp) / "data"), args.extra)
            config = load_config(overrides=settings)
            produce(broker, config.input_topic, WARM_UP)
            # Spark's Python workers unpickle the parsing function by module name: they need the repo
            env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                       PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
            child = subprocess.run([sys.executable, __file__, *(["--profile"] if args.profile else []),
                                    "--child", str(args.lines), *settings],
                                   env=env, cwd=REPO, capture_output=True, text=True)
            if child.returncode != 0:
                sys.stderr.write(child.stderr[-5000:])
                raise SystemExit(child.returncode)
            if args.profile:
                sys.stderr.write(child.stderr[child.stderr.find("function calls"):][:6000])
            result = json.loads(child.stdout.strip().splitlines()[-1])
        finally:
            broker_process.stop()
    print(json.dumps({"bench": "ingest", "lines": args.lines, "partitions": PARTITIONS, **result}))


if __name__ == "__main__":
    main()
