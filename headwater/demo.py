"""``make run``: the ALS demo end to end on the embedded stack, with data shipped inside pyspark.

Stack up → demo ratings to Kafka → ingest into Delta → batch model registered as champion → ingest
stream, speed and serving layers started as child processes → events for a brand-new user sent to
Kafka → that user's recommendations read from the REST endpoint, with no further batch run.
"""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from headwater.config import Config, ConfigError, load_config
from headwater.stack import Stack

log = logging.getLogger(__name__)
LAYERS = (("ingest-stream", []), ("speed", []), ("serve", []))


def movielens_lines() -> list[str]:
    """pyspark's bundled MovieLens sample (``user::item::rating::ts``) as ALS input lines."""
    import pyspark

    path = Path(pyspark.__file__).parent / "data" / "mllib" / "als" / "sample_movielens_ratings.txt"
    lines = []
    for row in path.read_text().splitlines():
        user, item, rating, ts = row.split("::")
        lines.append(f"u{user},m{item},{rating},{int(ts) * 1000}")
    return lines


def run_demo(app: str, conf: str | None, overrides: list[str]) -> int:
    if app != "als":
        raise ConfigError(f"no demo for app {app!r} yet; the demo covers: als")
    conf = conf or f"conf/{app}.conf"
    config = load_config(conf, overrides)
    stack = Stack(config)
    started = stack.up()
    print(f"stack up: Kafka at {stack.bootstrap_servers}, MLflow UI at {stack.mlflow_url}")
    children: list[subprocess.Popen] = []
    try:
        _load_history(config)
        children = _start_layers(config, conf, overrides, stack.var_dir / "logs")
        base = f"http://{config.get('headwater.serving.host')}:{config.get('headwater.serving.port')}"
        _wait_ready(base, children)
        _show_new_user(config, base)
        print(f"\nserving layer: {base}/recommend/u1   MLflow UI: {stack.mlflow_url}"
              f"   events table: {config.table_uri('events')}")
        print("layer logs in", stack.var_dir / "logs", "- press Ctrl-C to stop")
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while all(child.poll() is None for child in children):
            time.sleep(1)
        dead = [c.args[3] for c in children if c.poll() is not None]
        print(f"a layer stopped unexpectedly: {', '.join(dead)}; see the logs above", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        if started:
            stack.down()
        print("demo stopped" + (" and the stack it started is down" if started else ""))


def _load_history(config: Config) -> None:
    from batch_layer.ingest import run_ingest
    from batch_layer.runner import run_batch_once
    from headwater.kafka_io import LineProducer

    lines = movielens_lines()
    with LineProducer(config.get("headwater.kafka.bootstrap-servers")) as producer:
        producer.send_lines(config.input_topic, lines)
    print(f"sent {len(lines)} MovieLens ratings to {config.input_topic}; ingesting into Delta and training")
    run_ingest(config, once=True)
    run_batch_once(config)


def _start_layers(config: Config, conf: str, overrides: list[str], log_dir: Path) -> list[subprocess.Popen]:
    log_dir.mkdir(parents=True, exist_ok=True)
    children = []
    for command, extra in LAYERS:
        args = [sys.executable, "-m", "headwater.cli", command, "--conf", conf, *extra]
        for override in overrides:
            args += ["-D", override]
        out = open(log_dir / f"{command}.log", "ab")
        children.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        out.close()
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


def _show_new_user(config: Config, base: str, timeout: float = 60) -> None:
    from headwater.kafka_io import LineProducer

    user = f"new-user-{int(time.time())}"
    liked = ["m1", "m2", "m3", "m4", "m5"]
    # the speed layer reads new records only once its query runs: give it a moment after /ready
    time.sleep(3)
    sent_at = time.monotonic()
    with LineProducer(config.get("headwater.kafka.bootstrap-servers")) as producer:
        producer.send_lines(config.input_topic, [f"{user},{item},5" for item in liked])
    print(f"\nsent 5 events for brand-new user {user} to {config.input_topic} (no batch run follows)")
    while time.monotonic() - sent_at < timeout:
        answer = requests.get(f"{base}/recommend/{user}", params={"howMany": 5},
                              headers={"Accept": "application/json"}, timeout=5)
        if answer.status_code == 200:
            print(f"recommendations for {user} after {time.monotonic() - sent_at:.1f} s:")
            for entry in answer.json():
                print(f"  {entry['id']:>6}  {entry['value']:.3f}")
            return
        time.sleep(0.2)
    print(f"{user} not served within {timeout:.0f} s; see var/logs/speed.log", file=sys.stderr)
