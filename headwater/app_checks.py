"""The checks every app must pass, importable by app authors (as River's ``check_estimator``).

``check_app(config, workdir)`` runs them all on the app that ``config`` names, starting from its
:class:`~headwater.api.AppExample` (``App.example``); each check raises an AssertionError that says
what broke. They need no Spark, Kafka or MLflow server: the layers' classes are used directly, and
the pyfunc check uses the configured tracking store (a sqlite URI in tests).

1. the example state saves and loads back (the one save/load pair of the app);
2. the speed model learns UP payloads from the example lines, and they survive the wire format;
3. the serving model and a second speed model reach the speed model's state from those UPs, and
   applying them twice changes nothing (idempotence);
4. a speed model's copy is independent of the model it was copied from;
5. the saved state registers as an MLflow pyfunc model that loads back;
6. the input format turns hostile lines (:data:`HOSTILE_LINES`) into rows or rejections without
   raising, one answer per line.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from headwater.api import App, AppExample
from headwater.messages import MessageType, decode_update, encode_up
from headwater.registry import RegisteredModel

# Lines that stopped or could stop a parser: deep JSON nesting, numbers that overflow float, int64
# or int(), digits that pass isdigit() but not int(), quotes, control characters, a lone surrogate
# (JSON "\ud800"), over-long ids and lines.
HOSTILE_LINES = ["[" * 3000, "[" * 3000 + ",i1", "u1,i1,1,99999999999999999999", "u1,i1,1e300", "1e999,1e999",
                 "u" * 5000 + ",i1", '["\\ud800", "i1"]', "\ud800,\udfff", "\ud800,1", "u1,i1,1e999", "u1,i1,1,1e400",
                 "²,²", "9" * 5000 + ",1", '"', '"a,b', "\x00,\x00", "a\nb,c", "[1, [2]]", '{"a": 1}', "[]",
                 "", " ", ",", ",,,,,,,,,,", "x" * 70_000]


def check_app(config, workdir: Path, register: bool = True) -> None:
    """Every check below on ``config.app``; ``register`` False skips the MLflow check."""
    app: App = config.app
    example: AppExample = app.resolve("example")()
    registered = check_save_and_load(app, example, Path(workdir) / "state")
    speed, payloads = check_learns_updates(app, config, registered, example.lines)
    check_layers_agree(app, config, registered, speed, payloads)
    check_copy_is_independent(app, config, registered, example.lines)
    check_parses_hostile_lines(app, config)
    if register:
        check_registers_as_pyfunc(app, config, Path(workdir) / "state")


def check_save_and_load(app: App, example: AppExample, directory: Path) -> RegisteredModel:
    state_class = app.resolve("state")
    example.state.save(directory)
    loaded = state_class.load(directory)
    assert type(loaded) is type(example.state), f"{app.name}: load gave a {type(loaded).__name__}"
    return RegisteredModel(name=app.name, version=1, path=directory)


def check_learns_updates(app: App, config, registered: RegisteredModel, lines: list[str]):
    parsed = app.make_input_format(config).parse(lines)
    assert not parsed.rejected, f"{app.name}: the example lines are rejected: {parsed.rejected}"
    speed = app.resolve("speed").from_registered(registered, config)
    payloads = speed.learn_many(parsed.table)
    assert payloads, f"{app.name}: a micro-batch of new data produced no UP payloads"
    through_wire = []
    for payload in payloads:
        message = decode_update(encode_up(payload, base_version=registered.version))
        assert message is not None and message.type is MessageType.UP, f"{app.name}: {payload!r:.100} is not JSON"
        through_wire.append(message.payload)
    return speed, through_wire


def check_layers_agree(app: App, config, registered: RegisteredModel, speed, payloads: list[Any]) -> None:
    serving = app.resolve("serving_model").from_registered(registered, config)
    assert serving.ready_reason() is None, f"{app.name}: a loaded serving model is not ready: {serving.ready_reason()}"
    replica = app.resolve("speed").from_registered(registered, config)
    for model in (serving, replica):
        for payload in payloads:
            model.apply_update(payload)
    once = serving.state_summary()
    assert_same_state(speed.state_summary(), once, f"{app.name}: serving after the UPs vs speed")
    assert_same_state(speed.state_summary(), replica.state_summary(), f"{app.name}: a second speed model vs speed")
    for payload in payloads:
        serving.apply_update(payload)
    assert_same_state(once, serving.state_summary(), f"{app.name}: the UPs applied twice vs once")


def check_copy_is_independent(app: App, config, registered: RegisteredModel, lines: list[str]) -> None:
    speed = app.resolve("speed").from_registered(registered, config)
    before = speed.state_summary()
    copy = speed.copy()
    speed.learn_many(app.make_input_format(config).parse(lines).table)
    assert_same_state(before, copy.state_summary(), f"{app.name}: a copy changed when its original learned")


def check_parses_hostile_lines(app: App, config) -> None:
    fmt = app.make_input_format(config)
    for lines in ([line] for line in HOSTILE_LINES):
        try:
            parsed = fmt.parse(lines)
        except Exception as exc:
            raise AssertionError(f"{app.name}: the input format raised {type(exc).__name__} on {lines[0]!r:.80}; a "
                                 "bad line must be rejected with a reason (headwater.input_format.parse_each)") from exc
        answered = parsed.table.column("line_index").to_pylist() + [i for i, _ in parsed.rejected]
        assert answered == [0], f"{app.name}: the input format answered {answered} for one line {lines[0]!r:.80}"
        parsed.table.to_pylist()  # raises on a value Arrow cannot hold


def check_registers_as_pyfunc(app: App, config, directory: Path) -> None:
    import mlflow

    from headwater.registry import SPEED, download_alias, log_and_register

    registered = log_and_register(config, directory, app.resolve("pyfunc")(), {"layer": "speed"}, [SPEED])
    assert download_alias(config, SPEED).version == registered.version
    mlflow.set_tracking_uri(config.get("headwater.mlflow.tracking-uri"))
    loaded = mlflow.pyfunc.load_model(f"models:/{config.app_id}@{SPEED}")
    assert type(loaded.unwrap_python_model()).__name__ == app.pyfunc.rsplit(":", 1)[-1].rsplit(".", 1)[-1]


def assert_same_state(expected: Any, actual: Any, where: str, path: str = "") -> None:
    """Recursive equality of state summaries: arrays to float32 rounding, everything else exactly."""
    if isinstance(expected, Mapping):
        assert isinstance(actual, Mapping), f"{where}: {path or 'state'} is a {type(actual).__name__}"
        assert set(expected) == set(actual), (f"{where}: {path or 'state'} keys differ: "
                                              f"{sorted(map(str, set(expected) ^ set(actual)))[:5]}")
        for key in expected:
            assert_same_state(expected[key], actual[key], where, f"{path}.{key}")
    elif isinstance(expected, np.ndarray):
        np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected.astype(np.float64),
                                   rtol=1e-6, atol=1e-7, err_msg=f"{where}: {path}")
    elif isinstance(expected, float) and math.isnan(expected):
        assert isinstance(actual, float) and math.isnan(actual), f"{where}: {path} {actual!r} is not NaN"
    else:
        assert expected == actual, f"{where}: {path} {expected!r:.100} != {actual!r:.100}"


__all__ = ["HOSTILE_LINES", "assert_same_state", "check_app", "check_copy_is_independent", "check_layers_agree",
           "check_learns_updates", "check_parses_hostile_lines", "check_registers_as_pyfunc", "check_save_and_load"]
