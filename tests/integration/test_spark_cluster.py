"""The ingest job submitted with ``spark-submit`` to a real Spark standalone cluster (master + 1 worker).

The cluster runs from the installed pyspark's jars on 127.0.0.1. headwater reaches the executors as
a ``--py-files`` zip, as it would on a remote cluster; the Kafka reads, the parsing step and the
Parquet writes run there, and Spark's event log shows what the tasks sent the driver: file metadata,
the same few bytes per micro-batch for 1,002 rows as for 20,000.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from headwater import delta_tables
from headwater.embedded import free_port, pid_alive, port_is_open, terminate_process_group
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer

REPO = Path(__file__).resolve().parents[2]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def spark_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, SPARK_HOME=str(spark_home()), SPARK_LOCAL_IP="127.0.0.1",
                PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                SPARK_LOG_DIR=str(tmp_path / "logs"), SPARK_WORKER_DIR=str(tmp_path / "work"))


def start_daemon(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([str(spark_home() / "bin" / "spark-class"), *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def alive_workers(webui_port: int) -> int:
    try:
        state = requests.get(f"http://127.0.0.1:{webui_port}/json/", timeout=2).json()
    except (requests.RequestException, ValueError):
        return 0
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


@pytest.fixture
def standalone_master(tmp_path):
    """``spark://127.0.0.1:PORT`` of a master with one 1-core worker; both stopped afterwards."""
    env = spark_env(tmp_path)
    port, webui = free_port(), free_port()
    processes = [start_daemon(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(webui)], env, tmp_path / "master.log")]
    try:
        wait_for(lambda: port_is_open("127.0.0.1", port), 90, "the Spark master")
        processes.append(start_daemon(
            ["org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}", "--host", "127.0.0.1",
             "--port", str(free_port()), "--webui-port", str(free_port()), "--cores", "1", "--memory", "1g",
             "--work-dir", str(tmp_path / "work")], env, tmp_path / "worker.log"))
        wait_for(lambda: alive_workers(webui) == 1, 90, "the Spark worker to register")
        yield f"spark://127.0.0.1:{port}"
    finally:
        for process in reversed(processes):
            terminate_process_group(process.pid, timeout=20)
        for process in processes:
            process.wait(timeout=10)
            assert not pid_alive(process.pid)


def packages_zip(tmp_path: Path) -> Path:
    path = tmp_path / "headwater-packages.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for package in ("headwater", "batch_layer"):
            for file in (REPO / package).rglob("*"):
                if file.is_file() and "__pycache__" not in file.parts:
                    archive.write(file, file.relative_to(REPO))
    return path


def task_result_bytes(event_log: Path) -> tuple[int, int]:
    """(bytes of task results the driver received, tasks) in one application's Spark event log."""
    total = tasks = 0
    # Spark 4 writes an application's log as a directory of event files (eventlog_v2_<app>/events_*)
    files = sorted(event_log.glob("events_*")) if event_log.is_dir() else [event_log]
    for line in (line for file in files for line in file.read_text().splitlines()):
        event = json.loads(line)
        if event.get("Event") == "SparkListenerTaskEnd" and event.get("Task Metrics"):
            total += event["Task Metrics"]["Result Size"]
            tasks += 1
    return total, tasks


def test_spark_submit_ingest_to_a_standalone_cluster(standalone_master, tmp_path, broker):
    app_id = f"cluster{os.getpid()}"
    conf = tmp_path / "cluster.conf"
    conf.write_text(f"""headwater {{
  id = "{app_id}", app = "als"
  kafka {{ bootstrap-servers = "{broker}", input-partitions = 2 }}
  storage.root = "{tmp_path / 'data'}"
}}
""")
    event_logs = tmp_path / "event-logs"
    event_logs.mkdir()
    valid = [f"u{i % 13},i{i},{1 + i % 3}.0" for i in range(1000)]
    malformed = ["nonsense", "u1,i1,abc"]
    more = [f"u{i % 13},i{i},1.0" for i in range(1000, 21000)]
    ensure_topics(broker, {f"{app_id}.input": 2})
    submit = [str(spark_home() / "bin" / "spark-submit"), "--master", standalone_master,
              "--conf", "spark.executor.memory=512m", "--conf", "spark.cores.max=1",
              "--conf", f"spark.pyspark.python={sys.executable}", "--conf", "spark.driver.host=127.0.0.1",
              "--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir={event_logs.as_uri()}",
              "--conf", "spark.eventLog.compress=false",
              "--py-files", str(packages_zip(tmp_path)),
              "batch_layer/__main__.py", "ingest", "--conf", str(conf), "--once"]
    env = dict(spark_env(tmp_path), PYTHONPATH=str(REPO))
    received = []
    for lines in (valid + malformed, more):
        with LineProducer(broker) as producer:
            producer.send_lines(f"{app_id}.input", lines)
        process = subprocess.Popen(submit, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                terminate_process_group(process.pid)
        assert process.returncode == 0, output[-4000:]
        assert output.count("ingest batch") == 1, output[-4000:]  # one micro-batch per run
        logs = sorted(event_logs.iterdir(), key=lambda p: p.stat().st_mtime)
        received.append(task_result_bytes(logs[-1]))

    events = delta_tables.read_table_arrow(str(tmp_path / "data" / app_id / "events"))
    assert sorted(events["line"].to_pylist()) == sorted(valid + more)
    rejected = delta_tables.read_table_arrow(str(tmp_path / "data" / app_id / "rejected"))
    assert sorted(rejected["line"].to_pylist()) == sorted(malformed)
    # the work really ran on the cluster's executor, not in a local driver
    assert any((tmp_path / "work").glob("app-*/0/stderr"))
    # 20 times the rows, about the same bytes to the driver: metadata, not rows (20,000 lines are ~400 kB)
    (small, small_tasks), (large, large_tasks) = received
    assert small_tasks == large_tasks
    print(f"driver received {small} bytes for 1,002 rows, {large} bytes for 20,000 rows")
    assert large < 1.2 * small + 2000, received
