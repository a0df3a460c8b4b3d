"""``make run``: an app's demo end to end on the embedded stack, with data shipped in installed packages.

Stack up → the app's history to Kafka → ingested into Delta → batch model registered as champion →
ingest stream, speed and serving layers started as child processes → live data sent to Kafka →
the serving layer's answer changes, with no further batch run → the live (prequential) evaluation the
serving layer shows in ``/metrics``: the new events scored before learning, by batch + speed and by
the champion alone. An app names its demo module
(``App.demo``, e.g. ``headwater.apps.als.demo``), which has the same three names for every app:
``history_lines(app)``, ``show_live_learning(config, base_url)`` and ``EXAMPLE_PATH``.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from headwater.apps import available_apps, find_app
from headwater.config import OVERRIDES_ENV, Config, ConfigError, load_config
from headwater.embedded import terminate_process_group
from headwater.stack import Stack

LAYERS = ("ingest-stream", "speed", "serve")


def run_demo(app: str, conf: str | None, overrides: list[str]) -> int:
    demo = _demo_module(app)
    conf = conf or f"conf/{app}.conf"
    config = load_config(conf, overrides)
    stack = Stack(config)
    _forget_a_stopped_stack(stack)
    started = stack.up()
    print(f"stack up: Kafka at {stack.bootstrap_servers}, MLflow UI at {stack.mlflow_url}")
    children: list[subprocess.Popen] = []
    try:
        _load_history(config, demo.history_lines(app))
        children = _start_layers(conf, overrides, stack.var_dir / "logs")
        base = (f"http://{config.get('headwater.serving.host')}:{config.get('headwater.serving.port')}"
                f"{config.get('headwater.serving.api.context-path').rstrip('/')}")
        _wait_ready(base, children)
        demo.show_live_learning(config, base)
        _print_live_evaluation(base)
        print(f"\nserving layer: {base}{demo.EXAMPLE_PATH}   console: {base}/   API docs: {base}/docs"
              f"\nMLflow UI: {stack.mlflow_url}   events table: {config.table_uri('events')}")
        print("layer logs in", stack.var_dir / "logs", "- press Ctrl-C to stop")
        # Ctrl-C ends the demo here, not PySpark's handler from the in-process history load (it cancels jobs)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _interrupt)
        while all(child.poll() is None for child in children):
            time.sleep(1)
        dead = [child.args[3] for child in children if child.poll() is not None]
        print(f"a layer stopped unexpectedly: {', '.join(dead)}; see its log", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(children)
        if started:
            stack.down()
        print("demo stopped" + (" and the stack it started is down" if started else ""))


# What a demo run leaves in the stack's directory besides logs and pid files.
DEMO_STATE = ("data", "mlflow.db", "mlartifacts", "registry-cache")


def _forget_a_stopped_stack(stack: Stack) -> None:
    """A new embedded broker starts empty (it keeps topics in memory): the tables, checkpoints and registry
    of an earlier demo then point at records that are gone (their offsets beyond the new topics' ends), so
    they are removed and the demo starts as on a fresh clone. A stack still running is left as it is."""
    if any(service.alive for service in stack.status()):
        return
    stale = [stack.var_dir / name for name in DEMO_STATE if (stack.var_dir / name).exists()]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    if stale:
        print(f"the embedded broker starts empty: removed the earlier demo's state in {stack.var_dir} "
              f"({', '.join(p.name for p in stale)})")


def _demo_module(name: str):
    demo = find_app(name).demo
    if demo is None:
        with_demos = [n for n in sorted(available_apps()) if find_app(n).demo is not None]
        raise ConfigError(f"app {name!r} has no demo; the apps with one are: {', '.join(with_demos)}")
    return importlib.import_module(demo)


def _interrupt(*_):
    raise KeyboardInterrupt


def _load_history(config: Config, lines: list[str]) -> None:
    from batch_layer.ingest import run_ingest
    from batch_layer.runner import run_batch_once
    from headwater.kafka_producer import LineProducer
    from headwater.spark import get_spark

    with LineProducer(config.kafka) as producer:
        producer.send_lines(config.input_topic, lines)
    print(f"sent {len(lines)} history lines to {config.input_topic}; ingesting into Delta and training")
    run_ingest(config, once=True)
    run_batch_once(config)
    # the layers run in their own processes from here on: free this one's JVM
    get_spark(config).stop()


def layer_command(command: str, conf: str, overrides: list[str]) -> tuple[list[str], dict[str, str]]:
    """A layer's command line and environment: the overrides travel in the environment, since they may
    hold secrets and a command line is visible to every user of the machine."""
    args = [sys.executable, "-m", "headwater.cli", command, "--conf", conf]
    return args, {**os.environ, OVERRIDES_ENV: json.dumps(list(overrides))}


def _start_layers(conf: str, overrides: list[str], log_dir: Path) -> list[subprocess.Popen]:
    log_dir.mkdir(parents=True, exist_ok=True)
    children = []
    for command in LAYERS:
        args, env = layer_command(command, conf, overrides)
        with open(log_dir / f"{command}.log", "ab") as out:
            # own process group: stopping a layer also stops the Spark JVM it started
            children.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             env=env, start_new_session=True))
        print(f"started {command} (pid {children[-1].pid}), log {log_dir / (command + '.log')}")
    return children


def _wait_ready(base: str, children: list[subprocess.Popen], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            raise RuntimeError("a layer exited during start-up; see its log under var/logs")
        try:
            if requests.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise RuntimeError(f"serving layer at {base} not ready after {timeout:.0f} s")


def _print_live_evaluation(base: str, timeout: float = 15) -> None:
    from headwater.prequential import from_metrics_text

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events, figures = from_metrics_text(requests.get(f"{base}/metrics", timeout=5).text)
        if events:
            shown = {model: ", ".join(f"{name} {value:.4g}" for name, value in values.items())
                     for model, values in figures.items()}
            print(f"\nlive evaluation ({events:,} events, each scored before it was learned; {base}/metrics): "
                  f"batch + speed {shown.get('live', '-')} · champion alone {shown.get('champion', '-')}")
            return
        time.sleep(0.5)
    print("no live evaluation yet (the speed layer scores each micro-batch it folds in)", file=sys.stderr)


def _stop(children: list[subprocess.Popen]) -> None:
    for child in children:
        terminate_process_group(child.pid, timeout=20)
