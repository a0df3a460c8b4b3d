"""Layers as the separate processes they are in production, for the fault tests: start, SIGKILL, restart.

Each layer runs as ``python -m <layer> --conf FILE`` in a session of its own, so a SIGKILL of its
group takes its Spark JVM and Python workers with it, as a crash of the machine's process would.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
# the keys a layer process needs to see the test's broker, store, registry and app
SHARED_KEYS = ("headwater.id", "headwater.app", "headwater.kafka.bootstrap-servers", "headwater.storage.root",
               "headwater.mlflow.tracking-uri", "headwater.stack.var-dir")


def write_conf(path: Path, config, **settings) -> Path:
    """A HOCON file with ``config``'s shared keys and ``settings`` (dotted keys below ``headwater.``)."""
    values = {key: config.get(key) for key in SHARED_KEYS}
    values.update({f"headwater.{key}": value for key, value in settings.items()})
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()))
    return path


def start_layer(module: str, conf: Path, log_path: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    log = open(log_path, "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", module, *args, "--conf", str(conf)], stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
    finally:
        log.close()


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process's group and wait until every member is gone."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes of group {process.pid} survived SIGKILL")


def stop_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (a clean stop), then SIGKILL what is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    kill_group(process)


def wait_until(condition, what: str, timeout: float = 90.0, process: subprocess.Popen | None = None,
               log_path: Path | None = None):
    """Poll ``condition`` until it returns something true; fail naming ``what`` (and the log of ``process``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {process.returncode}; see {log_path}")
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}" + (f"; see {log_path}" if log_path else ""))


def get(base_url: str, path: str, json_answer: bool = True):
    """A GET that returns None while the server is not answering."""
    try:
        response = requests.get(base_url + path, timeout=5,
                                headers={"Accept": "application/json"} if json_answer else {})
    except requests.RequestException:
        return None
    return response


def ready(base_url: str) -> bool:
    response = get(base_url, "/ready")
    return response is not None and response.status_code == 200


__all__ = ["REPO", "get", "kill_group", "ready", "start_layer", "stop_group", "wait_until", "write_conf"]
