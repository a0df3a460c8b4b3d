"""``headwater speed``: the speed layer run until SIGINT/SIGTERM, started again after a failure.

The exactly-once start-up (:mod:`speed_layer.runner`) makes a restart safe: a new
:class:`~speed_layer.runner.SpeedLayer` resumes from the snapshot and the BATCH records.
"""
from __future__ import annotations

import logging

from headwater.config import Config
from speed_layer.runner import SpeedLayer

log = logging.getLogger(__name__)


def run_speed(config: Config, max_backoff_sec: float = 60.0) -> None:
    """Run the speed layer until SIGINT/SIGTERM; after a failure, start it again (with back-off)."""
    from headwater.spark import get_spark, stop_on_signals, wait_while_running

    get_spark(config)  # the session first: its creation installs PySpark's SIGINT handler, replaced here
    with stop_on_signals() as stop:
        backoff = 1.0
        while not stop.is_set():
            layer = SpeedLayer(config).start()
            try:
                if not wait_while_running(layer.await_termination, stop):
                    log.info("speed layer interrupted")
                return
            except Exception:
                log.exception("speed layer failed; starting again in %.0f s (it resumes from its snapshot)", backoff)
            finally:
                layer.stop()
            stop.wait(backoff)
            backoff = min(backoff * 2, max_backoff_sec)


__all__ = ["run_speed"]
