"""Schemathesis against a live serving app of every app type: no 5xx, every answer as the spec says.

Each app serves its contract-check example model over real HTTP, writes go to the real broker.
Every operation of ``/openapi.json`` gets ``HEADWATER_FUZZ_EXAMPLES`` generated requests (15 by
default, with a fixed seed so ``make test`` is repeatable; ``make fuzz`` asks for many more, from a
random seed), checked by all of Schemathesis's default checks but one: "schema-valid data is
accepted" cannot hold, since a datum or an event line is a string whose rules (the configured input
schema, a finite strength) the spec describes in words, and its 400 is the documented answer.
"""
from __future__ import annotations

import os

import hypothesis
import pytest
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.serving_helpers import example_app, live_server

EXAMPLES = int(os.environ.get("HEADWATER_FUZZ_EXAMPLES", "15"))
FIXED_SEED = "HEADWATER_FUZZ_EXAMPLES" not in os.environ


def fuzz_operation(operation, base: str) -> tuple[int, str | None]:
    """(examples run, failure or None) of one operation."""
    seen = []

    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=FIXED_SEED,
                         suppress_health_check=list(hypothesis.HealthCheck),
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
    @hypothesis.given(case=operation.as_strategy())
    def run(case):
        seen.append(case)
        case.call_and_validate(base_url=base, excluded_checks=[positive_data_acceptance])

    try:
        run()
    except Exception as exc:  # every operation runs; the failures are reported together
        return len(seen), f"{operation.label}: {exc}"
    return len(seen), None


def fuzz(base: str) -> tuple[int, int, list[str]]:
    """(operations, examples, failures) of every operation at ``base``."""
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations, examples, failures = 0, 0, []
    for loaded in schema.get_all_operations():
        ran, failure = fuzz_operation(loaded.ok(), base)
        operations, examples = operations + 1, examples + ran
        failures += [failure] if failure else []
    return operations, examples, failures


@pytest.mark.parametrize("app", ["als", "kmeans", "rdf-classification", "rdf-regression"])
def test_schemathesis_finds_no_failure(broker_config, tmp_path, app, capsys):
    with live_server(example_app(broker_config, tmp_path, app)) as base:
        operations, examples, failures = fuzz(base)
    with capsys.disabled():
        print(f"\nschemathesis {app}: {operations} operations, {examples} examples, {len(failures)} failures")
    assert operations > 0 and examples >= operations
    assert not failures, "\n\n".join(failures)
