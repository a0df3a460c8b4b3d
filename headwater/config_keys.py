"""The core's configuration keys: the constraint of each, the open sections, which keys hold secrets.

A table of its own because it is what grows: every framework feature adds its keys here and to
``reference.conf``, while an app declares those of its section in ``App.constraints``.
"""
from __future__ import annotations

import re
from typing import Any

from headwater.constraints import (
    BOOL,
    NON_EMPTY_STRING,
    STRING,
    STRINGS,
    ContextPath,
    Interval,
    ListOf,
    OfType,
    Optional,
    Options,
)
from headwater.kafka_settings import PROTOCOLS, SASL_MECHANISMS

# Sections whose keys are user-defined, so they are not checked against the reference files.
OPEN_SECTIONS = ("headwater.spark.conf", "headwater.storage.options")
# Keys whose values are never shown, in error messages or anywhere else (the last path segment)
SECRET_KEY = re.compile(r"(^|-)(password|secret|tokens?)$")


def is_secret(path: str) -> bool:
    """True for keys holding credentials: their values are never echoed.

    >>> is_secret("headwater.serving.api.read-tokens"), is_secret("headwater.kafka.ssl.key-file")
    (True, False)
    """
    return bool(SECRET_KEY.search(path.rsplit(".", 1)[-1]))


# Constraints of the core keys; an app adds those of its section (App.constraints).
CORE_CONSTRAINTS: dict[str, Any] = {
    "headwater.id": OfType((str,), "a string naming the app instance"),
    "headwater.app": OfType((str,), "an app name or 'package.module:APP'"),
    "headwater.kafka.bootstrap-servers": STRING,
    "headwater.kafka.input-partitions": Interval(int, 1),
    "headwater.kafka.update-partitions": Interval(int, 1, 1),
    "headwater.kafka.max-records-per-trigger": Interval(int, 1),
    "headwater.kafka.max-records-per-split": Interval(int, 1),
    "headwater.kafka.starting-offsets": STRING,
    "headwater.kafka.fail-on-data-loss": BOOL,
    "headwater.kafka.poll-timeout-ms": Interval(int, 1),
    "headwater.kafka.max-message-bytes": Interval(int, 1024),
    "headwater.kafka.security-protocol": Options(PROTOCOLS),
    "headwater.kafka.ssl.ca-file": Optional(STRING),
    "headwater.kafka.ssl.cert-file": Optional(STRING),
    "headwater.kafka.ssl.key-file": Optional(STRING),
    "headwater.kafka.ssl.key-password": Optional(STRING),
    "headwater.kafka.ssl.check-hostname": BOOL,
    "headwater.kafka.sasl.mechanism": Optional(Options(SASL_MECHANISMS)),
    "headwater.kafka.sasl.user-name": Optional(STRING),
    "headwater.kafka.sasl.password": Optional(STRING),
    "headwater.storage.root": STRING,
    "headwater.mlflow.tracking-uri": STRING,
    "headwater.mlflow.experiment": Optional(STRING),
    "headwater.spark.master": STRING,
    "headwater.spark.app-name": STRING,
    "headwater.stack.var-dir": STRING,
    "headwater.stack.broker-host": STRING,
    "headwater.stack.broker-port": Interval(int, 1, 65535),
    "headwater.stack.mlflow-host": STRING,
    "headwater.stack.mlflow-port": Interval(int, 1, 65535),
    "headwater.stack.start-timeout-sec": Interval(float, 0, closed_low=False),
    "headwater.ingest.trigger-interval-sec": Interval(float, 0),
    "headwater.batch.generation-interval-sec": Interval(float, 0, closed_low=False),
    "headwater.batch.trigger-on-drift": BOOL,
    "headwater.batch.window": Optional(Interval(int, 1)),
    "headwater.batch.half-life": Optional(Interval(float, 0, closed_low=False)),
    "headwater.maintenance.after-generation": BOOL,
    "headwater.maintenance.target-file-mb": Interval(float, 0, closed_low=False),
    "headwater.maintenance.retention-hours": Interval(int, 0),
    "headwater.speed.trigger-interval-sec": Interval(float, 0),
    "headwater.speed.snapshot-interval-sec": Interval(float, 0, closed_low=False),
    "headwater.speed.drift.window-rows": Interval(int, 10),
    "headwater.rollout.auto-rollback": BOOL,
    "headwater.rollout.auto-promote": BOOL,
    "headwater.rollout.alpha": Interval(float, 0, 1, closed_low=False, closed_high=False),
    "headwater.rollout.block-size": Interval(int, 1),
    "headwater.rollout.margin": Interval(float, 0),
    "headwater.rollout.max-events": Interval(int, 1),
    "headwater.rollout.prior-scale": Interval(float, 0, closed_low=False),
    "headwater.rollout.latency-guard.enabled": BOOL,
    "headwater.rollout.latency-guard.multiple": Interval(float, 1),
    "headwater.rollout.latency-guard.window": Interval(int, 10),
    "headwater.speed.drift.alpha": Interval(float, 0, 1, closed_low=False, closed_high=False),
    "headwater.serving.host": STRING,
    "headwater.serving.port": Interval(int, 0, 65535),
    "headwater.serving.rescorer": Optional(STRING),
    "headwater.serving.max-loaded-versions": Interval(int, 1, 16),
    "headwater.serving.routing.challenger-percent": Interval(float, 0, 100),
    "headwater.serving.routing.shadow": BOOL,
    "headwater.serving.routing.shadow-queue": Interval(int, 1, 100_000),
    "headwater.serving.scoring.group-max-queries": Interval(int, 1, 256),
    "headwater.serving.scoring.group-wait-ms": Interval(float, 0, 100),
    "headwater.serving.ann.enabled": BOOL,
    "headwater.serving.ann.min-items": Interval(int, 1),
    "headwater.serving.ann.candidates": Interval(int, 1),
    "headwater.serving.ann.train-sample": Interval(int, 256),
    "headwater.serving.ann.rebuild-fraction": Interval(float, 0, 1, closed_low=False),
    "headwater.serving.ann.build-threads": Interval(int, 1, 64),
    "headwater.serving.max-body-bytes": Interval(int, 1),
    "headwater.serving.max-inflated-bytes": Interval(int, 1),
    "headwater.serving.write-timeout-sec": Interval(float, 0, closed_low=False),
    "headwater.input.max-line-bytes": Interval(int, 16),
    "headwater.input.max-id-length": Interval(int, 1),
    "headwater.input.max-abs-strength": Interval(float, 0, closed_low=False),
    "headwater.input.max-abs-feature": Interval(float, 0, closed_low=False),
    "headwater.input.min-timestamp-ms": Interval(int, -(2**63) + 1, 2**63 - 1),
    "headwater.input.max-timestamp-ms": Interval(int, -(2**63) + 1, 2**63 - 1),
    "headwater.serving.api.read-only": BOOL,
    "headwater.serving.api.read-tokens": ListOf(NON_EMPTY_STRING, allow_empty=True),
    "headwater.serving.api.write-tokens": ListOf(NON_EMPTY_STRING, allow_empty=True),
    "headwater.serving.api.user-name": Optional(NON_EMPTY_STRING),
    "headwater.serving.api.password": Optional(NON_EMPTY_STRING),
    "headwater.serving.api.tls.cert-file": Optional(STRING),
    "headwater.serving.api.tls.key-file": Optional(STRING),
    "headwater.serving.api.context-path": ContextPath(),
    "headwater.serving.api.compress-min-bytes": Interval(int, 0),
    "headwater.serving.api.threads": Interval(int, 1),
    "headwater.input-schema.feature-names": STRINGS,
    "headwater.input-schema.numeric-features": STRINGS,
    "headwater.input-schema.categorical-features": STRINGS,
    "headwater.input-schema.ignored-features": STRINGS,
    "headwater.input-schema.id-features": STRINGS,
    "headwater.input-schema.target-feature": Optional(STRING),
    "headwater.ml.eval.test-fraction": Interval(float, 0, 1, closed_high=False),
    "headwater.ml.eval.candidates": Interval(int, 1),
    "headwater.ml.eval.parallelism": Interval(int, 1),
    "headwater.ml.eval.search": Options(("random", "grid"), any_case=True),
    "headwater.ml.eval.threshold": Optional(Interval(float)),
    "headwater.ml.eval.max-regression": Interval(float, 0),
    "headwater.ml.eval.beat-baseline": BOOL,
    "headwater.ml.eval.refit": BOOL,
    "headwater.ml.eval.seed": Interval(int, 0),
}
