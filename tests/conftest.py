"""Shared fixtures: one broker, one Spark session and one MLflow store per test session.

Every test that touches Kafka or Delta uses its own app id (``make_config``), so topics and tables
never collide on the shared broker.
"""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

from headwater.config import load_config
from headwater.embedded import free_port, start_broker

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("headwater")


@pytest.fixture(scope="session")
def broker(session_dir) -> str:
    """Bootstrap servers of one embedded Tansu broker for the whole test session."""
    port = free_port()
    process = start_broker("127.0.0.1", port, session_dir / "broker.log")
    yield f"127.0.0.1:{port}"
    process.stop()


@pytest.fixture(scope="session")
def mlflow_uri(session_dir) -> str:
    """An MLflow tracking/registry store in sqlite, used directly (no server process)."""
    return f"sqlite:///{session_dir / 'mlflow.db'}"


@pytest.fixture
def make_config(tmp_path, broker, mlflow_uri):
    """Build a validated Config for a fresh app id; keyword overrides use dotted keys below headwater."""

    def build(app: str = "als", **overrides):
        app_id = f"t{uuid.uuid4().hex[:10]}"
        settings = {
            "id": app_id, "app": app,
            "kafka.bootstrap-servers": broker,
            "storage.root": str(tmp_path / "data"),
            "mlflow.tracking-uri": mlflow_uri,
            "stack.var-dir": str(tmp_path / "var"),
        }
        settings.update(overrides)
        return load_config(overrides=[f"headwater.{k}={_hocon(v)}" for k, v in settings.items()])

    return build


def _hocon(value) -> str:
    import json

    return json.dumps(value) if not isinstance(value, str) else json.dumps(value)


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test session."""
    from headwater.spark import get_spark

    config = load_config(overrides=["headwater.id=tests", "headwater.app=als"])
    session = get_spark(config)
    yield session
    session.stop()
