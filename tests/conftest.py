"""Shared fixtures: one Spark session and one MLflow store per test session (the broker is integration's).

Every test uses its own app id (``make_config``), so topics, tables and registered models never
collide. ``make_config`` points Kafka at a port nothing listens on: a unit test that reached for
the broker would fail; tests that need it live in ``tests/integration/`` (``broker_config``).
"""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from headwater.config import load_config

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

# Property tests: a bounded run in `make test`, a long one in `make fuzz` (--hypothesis-profile=fuzz).
# No deadline: the machine is shared, and a slow example is not a failure. No example database:
# a run must not depend on files left by an earlier one.
settings.register_profile("default", max_examples=200, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=20_000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("headwater")


@pytest.fixture(scope="session")
def mlflow_uri(session_dir) -> str:
    """An MLflow tracking/registry store in sqlite, used directly (no server process)."""
    return f"sqlite:///{session_dir / 'mlflow.db'}"


# a port with no broker: connections are refused at once
NO_BROKER = "127.0.0.1:9"


@pytest.fixture
def make_config(tmp_path, mlflow_uri):
    """Build a validated Config for a fresh app id; keyword overrides use dotted keys below headwater."""

    def build(app: str = "als", **overrides):
        app_id = f"t{uuid.uuid4().hex[:10]}"
        settings = {
            "id": app_id, "app": app,
            "kafka.bootstrap-servers": NO_BROKER,
            "storage.root": str(tmp_path / "data"),
            "mlflow.tracking-uri": mlflow_uri,
            "stack.var-dir": str(tmp_path / "var"),
        }
        settings.update(overrides)
        return load_config(overrides=[f"headwater.{k}={_hocon(v)}" for k, v in settings.items()])

    return build


def _hocon(value) -> str:
    import json

    return json.dumps(value)


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test session."""
    from headwater.spark import get_spark

    config = load_config(overrides=["headwater.id=tests", "headwater.app=als"])
    session = get_spark(config)
    yield session
    session.stop()
