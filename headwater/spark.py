"""The one place a SparkSession is built: master, settings and the Python data sources headwater needs."""
from __future__ import annotations

import os
import sys

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
