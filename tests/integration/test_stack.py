"""`headwater stack up|status|down` as a user runs it: real broker and MLflow server processes."""
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from kafka import KafkaConsumer

from headwater.embedded import free_port, pid_alive


def headwater(*args, check=True):
    return subprocess.run([sys.executable, "-m", "headwater.cli", *args], capture_output=True, text=True,
                          check=check, timeout=180)


@pytest.fixture
def stack_conf(tmp_path):
    path = tmp_path / "stack.conf"
    path.write_text(f"""headwater {{
      id = "stacktest", app = "als"
      stack {{ var-dir = "{tmp_path / 'var'}", broker-port = {free_port()}, mlflow-port = {free_port()} }}
      kafka.input-partitions = 3
    }}""")
    yield str(path)
    headwater("stack", "down", "--conf", str(path), check=False)


def pids(tmp_path):
    import json

    return {p.stem: json.loads(p.read_text())["pid"] for p in (tmp_path / "var" / "run").glob("*.pid")}


def test_up_status_down_leaves_nothing_behind(stack_conf, tmp_path):
    out = headwater("stack", "up", "--conf", stack_conf).stdout
    assert "MLflow UI at http://127.0.0.1:" in out
    started = pids(tmp_path)
    assert set(started) == {"broker", "mlflow"}

    from headwater.config import load_config

    config = load_config(stack_conf)
    broker = f"127.0.0.1:{config.get('headwater.stack.broker-port')}"
    consumer = KafkaConsumer(bootstrap_servers=broker)
    topics = {t: len(consumer.partitions_for_topic(t) or ()) for t in ("stacktest.input", "stacktest.update")}
    consumer.close()
    assert topics == {"stacktest.input": 3, "stacktest.update": 1}
    assert requests.get(f"http://127.0.0.1:{config.get('headwater.stack.mlflow-port')}/health").ok

    status = headwater("stack", "status", "--conf", stack_conf).stdout
    assert status.count("running, pid") == 2

    # a second `up` starts nothing new
    assert "already running" in headwater("stack", "up", "--conf", stack_conf).stdout

    out = headwater("stack", "down", "--conf", stack_conf).stdout
    assert "broker" in out and "mlflow" in out
    time.sleep(0.5)
    assert not any(pid_alive(pid) for pid in started.values())
    # no mlflow worker or tansu process of this stack survives either (process groups are killed);
    # zombies (state Z) are dead, merely not yet reaped by this sandbox's init
    ps = subprocess.run(["ps", "-eo", "pgid,stat,args"], capture_output=True, text=True).stdout
    groups = {str(p) for p in started.values()}
    alive = [line for line in ps.splitlines()[1:] if line.split()[0] in groups and not line.split()[1].startswith("Z")]
    assert not alive


def test_taken_port_and_dead_child_are_clear(stack_conf, tmp_path):
    from headwater.config import load_config

    config = load_config(stack_conf)
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", config.get("headwater.stack.broker-port")))
    blocker.listen()
    try:
        result = headwater("stack", "up", "--conf", stack_conf, check=False)
        assert result.returncode == 2
        assert "already taken" in result.stderr
    finally:
        blocker.close()

    headwater("stack", "up", "--conf", stack_conf)
    os.killpg(pids(tmp_path)["broker"], signal.SIGKILL)
    time.sleep(0.5)
    status = headwater("stack", "status", "--conf", stack_conf).stdout
    assert "dead" in status
    # `up` restarts the dead broker and recreates its (in-memory) topics
    headwater("stack", "up", "--conf", stack_conf)
    assert "dead" not in headwater("stack", "status", "--conf", stack_conf).stdout


def test_down_leaves_alone_a_process_that_took_over_a_recorded_pid(stack_conf, tmp_path):
    import json

    headwater("stack", "up", "--conf", stack_conf)
    started = pids(tmp_path)
    headwater("stack", "down", "--conf", stack_conf)
    # a stale pid file whose pid now belongs to an unrelated process (here: one this test started)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        run_dir = tmp_path / "var" / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "broker.pid").write_text(json.dumps({"pid": bystander.pid, "command": ["tansu", "broker"]}))
        out = headwater("stack", "down", "--conf", stack_conf)
        assert "stopped nothing" in out.stdout
        assert "leaving it alone" in out.stderr
        assert bystander.poll() is None and pid_alive(bystander.pid)
        assert "dead" not in headwater("stack", "status", "--conf", stack_conf).stdout
        assert not (run_dir / "broker.pid").exists()
    finally:
        bystander.kill()
        bystander.wait()
    assert set(started) == {"broker", "mlflow"}
