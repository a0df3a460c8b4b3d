"""Exactly-once ingestion under crashes: the ingest process is SIGKILLed mid-stream and restarted.

50,000 ALS lines (1% malformed) go to a 4-partition topic, a third while each of three ingest
processes (``python -m batch_layer ingest``, with its Spark JVM) runs; each is killed with SIGKILL
at a random moment after it has committed at least one new batch, while lines wait unread, and
the next one restarts from the checkpoint. A last ``--once`` run drains the topic. Every valid
line must be in ``events`` exactly once and every malformed one in ``rejected``, however the kills
fell (before, during or between the two appends, or after them but before Spark's commit log).
"""
from __future__ import annotations

import os
import queue
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.compute as pc

from headwater import delta_tables
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer
from tests.integration.processes import kill_group

LINES = 50_000
CHUNK = 1_000
CHUNK_PAUSE_SEC = 0.2
KILLS = 3
REPO = Path(__file__).resolve().parents[2]


def line(i: int) -> str:
    if i % 100 == 0:
        return f"malformed-{i}" if i % 200 else f"u{i},i{i},not-a-number"
    return f"u{i % 997},i{i},{1 + i % 5}.0,{1_700_000_000_000 + i}"


def write_conf(tmp_path: Path, app_id: str, broker: str) -> Path:
    path = tmp_path / "ingest.conf"
    path.write_text(f"""headwater {{
  id = "{app_id}"
  app = "als"
  kafka {{
    bootstrap-servers = "{broker}"
    input-partitions = 4
    max-records-per-trigger = 4000
    max-records-per-split = 2500
  }}
  storage.root = "{tmp_path / 'data'}"
  ingest.trigger-interval-sec = 0.2
  spark.master = "local[2]"
}}
""")
    return path


def start_ingest(conf: Path, log, once: bool = False) -> subprocess.Popen:
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    # a new session: the Spark JVM and its Python workers are children, killed with the group
    return subprocess.Popen([sys.executable, "-m", "batch_layer", "ingest", "--conf", str(conf),
                             *(["--once"] if once else [])],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)


def events_version(uri: str) -> int:
    table = delta_tables.open_table(uri)
    return -1 if table is None else table.version()


def committed_rows(uri: str) -> int:
    import pyarrow as pa

    return pa.table(delta_tables.open_table(uri).get_add_actions())["num_records"].to_numpy().sum()


def test_every_line_lands_exactly_once_despite_kills(tmp_path, broker):
    app_id = f"eo{os.getpid()}{random.randrange(10**6)}"
    conf = write_conf(tmp_path, app_id, broker)
    topic = f"{app_id}.input"
    events_uri = str(tmp_path / "data" / app_id / "events")
    ensure_topics(broker, {topic: 4})
    # each run gets a share of the lines, produced while it starts up and ingests
    shares: queue.Queue = queue.Queue()
    produced = [0]

    def produce():
        with LineProducer(broker) as producer:
            while (share := shares.get()) is not None:
                for start in range(share.start, share.stop, CHUNK):
                    producer.send_lines(topic, (line(i) for i in range(start, min(start + CHUNK, share.stop))))
                    producer.flush()
                    produced[0] = min(start + CHUNK, share.stop)
                    time.sleep(CHUNK_PAUSE_SEC)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    bounds = [LINES * k // KILLS for k in range(KILLS + 1)]
    rng = random.Random(7)
    log_path = tmp_path / "ingest.log"
    kills_with_backlog = 0
    with open(log_path, "ab") as log:
        for run in range(KILLS):
            before = events_version(events_uri)
            process = start_ingest(conf, log)
            shares.put(range(bounds[run], bounds[run + 1]))
            try:
                deadline = time.monotonic() + 180
                while events_version(events_uri) <= max(before, 0) and time.monotonic() < deadline:
                    assert process.poll() is None, f"ingest exited early; see {log_path}"
                    time.sleep(0.05)
                assert events_version(events_uri) > max(before, 0), f"no batch committed; see {log_path}"
                time.sleep(rng.uniform(0.0, 1.5))
            finally:
                kill_group(process)
            kills_with_backlog += committed_rows(events_uri) < produced[0] * 0.99 - 100
        shares.put(None)
        producer.join(timeout=120)
        assert produced[0] == LINES
        # the kills fell mid-stream, with lines produced but not yet ingested
        assert kills_with_backlog >= 2
        final = start_ingest(conf, log, once=True)
        try:
            assert final.wait(timeout=240) == 0, f"the final --once run failed; see {log_path}"
        finally:
            if final.poll() is None:
                kill_group(final)

    expected_valid = {line(i) for i in range(LINES) if i % 100}
    expected_bad = {line(i) for i in range(0, LINES, 100)}
    events = delta_tables.read_table_arrow(events_uri).select(["line", "partition", "offset"])
    keys = pc.binary_join_element_wise(pc.cast(events["partition"], "string"),
                                       pc.cast(events["offset"], "string"), ":")
    assert events.num_rows == len(expected_valid)
    assert len(pc.unique(keys)) == events.num_rows
    assert set(events["line"].to_pylist()) == expected_valid

    rejected = delta_tables.read_table_arrow(str(tmp_path / "data" / app_id / "rejected"))
    assert rejected.num_rows == len(expected_bad)
    assert set(rejected["line"].to_pylist()) == expected_bad
    assert all(rejected["reason"].to_pylist())
