"""The real broker for the integration tests: one embedded Tansu broker per test session.

Every test in this folder is marked ``integration`` (``pytest -m "not integration"`` runs the rest).
"""
from __future__ import annotations

import pytest

from headwater.embedded import free_port, start_broker


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker(session_dir) -> str:
    """Bootstrap servers of one embedded Tansu broker for the whole test session."""
    process = start_broker("127.0.0.1", free_port(), session_dir / "broker.log")
    yield f"127.0.0.1:{process.port}"
    process.stop()


@pytest.fixture
def broker_config(make_config, broker):
    """``make_config`` with Kafka at the session's broker."""

    def build(app: str = "als", **overrides):
        return make_config(app, **{"kafka.bootstrap-servers": broker, **overrides})

    return build
