"""``headwater stack up|down|status``: the embedded broker and MLflow server, tracked by pid files.

``up`` starts what is not already running, waits until each answers, writes one pid file per
process under ``<var-dir>/run`` (the pid and the command line) and creates the app's topics (the
embedded broker keeps topics in memory, so a restarted broker needs them again). ``down`` stops only
what those pid files name, and only while the pid still runs the command ``up`` started: after a
reboot or a crash the pid may belong to some other process, which is left alone.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from headwater.config import Config
from headwater.embedded import (
    StackError,
    mlflow_answers,
    pid_alive,
    port_is_open,
    process_command,
    start_broker,
    start_mlflow,
    terminate_process_group,
)

log = logging.getLogger(__name__)
SERVICES = ("broker", "mlflow")


@dataclass
class ServiceStatus:
    name: str
    pid: int | None
    alive: bool
    answering: bool
    url: str

    def describe(self) -> str:
        if self.pid is None:
            state = "not started by headwater" + (" (but the port answers)" if self.answering else "")
        elif not self.alive:
            state = f"dead (pid {self.pid} is gone; run 'headwater stack up' again)"
        else:
            state = f"running, pid {self.pid}" + ("" if self.answering else ", NOT answering")
        return f"{self.name:7s} {self.url:28s} {state}"


class Stack:
    """The embedded stack described by ``headwater.stack.*`` of a config."""

    def __init__(self, config: Config):
        self.config = config
        self.var_dir = Path(config.get("headwater.stack.var-dir")).resolve()
        self.run_dir = self.var_dir / "run"
        self.log_dir = self.var_dir / "logs"
        self.broker_host = config.get("headwater.stack.broker-host")
        self.broker_port = config.get("headwater.stack.broker-port")
        self.mlflow_host = config.get("headwater.stack.mlflow-host")
        self.mlflow_port = config.get("headwater.stack.mlflow-port")
        self.timeout = float(config.get("headwater.stack.start-timeout-sec"))

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.broker_host}:{self.broker_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.mlflow_host}:{self.mlflow_port}"

    def up(self) -> list[str]:
        """Start what is not running; return the names started. Always (re)creates the topics."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started = []
        for name in SERVICES:
            status = self.status_of(name)
            if status.alive:
                if not status.answering:
                    raise StackError(f"{name} (pid {status.pid}) is running but does not answer on "
                                     f"{status.url}; see {self.log_dir / (name + '.log')}")
                continue
            self._pid_file(name).unlink(missing_ok=True)
            process = (start_broker(self.broker_host, self.broker_port, self.log_dir / "broker.log", self.timeout)
                       if name == "broker" else
                       start_mlflow(self.mlflow_host, self.mlflow_port, self.var_dir, self.timeout))
            self._pid_file(name).write_text(json.dumps({"pid": process.pid, "command": list(process.command)}))
            log.info("started %s (pid %d) at %s", name, process.pid, status.url)
            started.append(name)
        self.create_topics()
        return started

    def create_topics(self) -> list[str]:
        from headwater.kafka_admin import ensure_topics

        return ensure_topics(self.bootstrap_servers, {
            self.config.input_topic: self.config.get("headwater.kafka.input-partitions"),
            self.config.update_topic: self.config.get("headwater.kafka.update-partitions"),
        })

    def down(self) -> list[str]:
        """Stop what ``up`` started (per the pid files); return the names stopped."""
        stopped = []
        for name in reversed(SERVICES):
            pid = self._started_pid(name)
            if pid is not None and terminate_process_group(pid):
                log.info("stopped %s (pid %d)", name, pid)
                stopped.append(name)
            self._pid_file(name).unlink(missing_ok=True)
        return stopped

    def status(self) -> list[ServiceStatus]:
        return [self.status_of(name) for name in SERVICES]

    def status_of(self, name: str) -> ServiceStatus:
        pid = self._read_pid(name)
        if name == "broker":
            url = f"kafka://{self.bootstrap_servers}"
            answering = port_is_open(self.broker_host, self.broker_port)
        else:
            url = self.mlflow_url
            answering = mlflow_answers(self.mlflow_host, self.mlflow_port)
        return ServiceStatus(name, pid, pid is not None and self._started_pid(name) == pid, answering, url)

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _read_pid_file(self, name: str) -> tuple[int, list[str] | None] | None:
        try:
            recorded = json.loads(self._pid_file(name).read_text())
            command = recorded.get("command")
            return int(recorded["pid"]), None if command is None else [str(part) for part in command]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _read_pid(self, name: str) -> int | None:
        recorded = self._read_pid_file(name)
        return None if recorded is None else recorded[0]

    def _started_pid(self, name: str) -> int | None:
        """The pid file's pid if that process is alive and runs the command ``up`` started, else None."""
        recorded = self._read_pid_file(name)
        if recorded is None or not pid_alive(recorded[0]):
            return None
        pid, command = recorded
        running = process_command(pid)
        if command is None or running != command:
            log.warning("%s: pid %d from %s now runs %s, not the %s headwater started; leaving it alone",
                        name, pid, self._pid_file(name), " ".join(running or ["nothing readable"])[:200], name)
            return None
        return pid
