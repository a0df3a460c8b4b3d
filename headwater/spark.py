"""The one place a SparkSession is built: master, settings and the Python data sources headwater needs."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

from headwater.config import Config


def get_spark(config: Config):
    """Return the active session or build one from ``headwater.spark.*``.

    Spark's Python workers must run this interpreter (the virtual environment's), otherwise the
    Kafka data source fails in the workers with "No module named kafka".
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        register_data_sources(active)
        return active
    builder = SparkSession.builder.appName(config.get("headwater.spark.app-name"))
    # spark-submit sets the master itself; the config's master applies when run directly.
    if "spark.master" not in os.environ.get("PYSPARK_SUBMIT_ARGS", "") and not _submitted():
        builder = builder.master(config.get("headwater.spark.master"))
    for key, value in config.section("headwater.spark.conf").items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    register_data_sources(spark)
    return spark


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event that SIGINT (Ctrl-C) and SIGTERM set while the block runs, replacing PySpark's SIGINT handler;
    the handlers from before come back after it.

    PySpark's handler calls ``cancelAllJobs`` and raises KeyboardInterrupt wherever the main thread
    is, usually inside a py4j call, which then fails with "reentrant call inside BufferedReader"
    tracebacks. Setting a flag and letting the waiting loop stop the query is a clean stop. Enter it
    after the SparkContext exists (its creation installs PySpark's handler), from the main thread.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def wait_while_running(await_termination, stop: threading.Event, poll_sec: float = 0.5) -> bool:
    """Call ``await_termination(timeout)`` until it returns True (the query ended) or ``stop`` is set;
    True when the query ended by itself. The query's failure propagates."""
    while not stop.is_set():
        if await_termination(poll_sec):
            return True
    return False


def stop_between_batches(query, timeout_sec: float = 60.0) -> None:
    """Stop a streaming query when no micro-batch is running (or after ``timeout_sec``).

    ``query.stop()`` during a batch cancels its jobs: the batch function then fails inside py4j, which
    logs an ERROR with a traceback although nothing went wrong. Between triggers the stop is silent,
    and the interrupted batch would be read again anyway (its offsets are not committed).
    """
    deadline = time.monotonic() + timeout_sec
    while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(0.05)
    query.stop()


def _submitted() -> bool:
    # spark-submit runs the driver with SPARK_SUBMIT set in the JVM's environment and passes
    # the gateway port to Python; either marks a submitted application.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def register_data_sources(spark) -> None:
    from headwater.kafka_source import KafkaDataSource

    spark.dataSource.register(KafkaDataSource)


def delta_spark_available(spark) -> bool:
    """True when the Delta Lake jars are on the session's classpath (e.g. --packages on a cluster)."""
    try:
        spark._jvm.java.lang.Class.forName("io.delta.tables.DeltaTable")
        return True
    except Exception:
        return False
