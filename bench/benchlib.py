"""Plumbing shared by the benchmarks: a serving process on a free port, latency percentiles, RSS."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python bench/x.py` from a source checkout


def latency_ms(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"requests": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@contextmanager
def server_process(code: str, *args: str, env: dict[str, str] | None = None, scheme: str = "http",
                   verify: str | bool = True):
    """Run ``code`` (which gets ``args`` then the port in argv and prints "ready") until /ready answers.

    Yields (process, port); the process is stopped on exit.
    """
    from headwater.embedded import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", code, *args, str(port)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    try:
        assert server.stdout.readline().strip() == "ready"
        for _ in range(600):  # a gunicorn worker loads the model after 'ready'
            try:
                requests.get(f"{scheme}://127.0.0.1:{port}/ready", timeout=1, verify=verify)
                break
            except requests.RequestException:  # not listening yet, or still loading
                time.sleep(0.1)
        yield server, port
    finally:
        server.terminate()
        server.wait(10)
