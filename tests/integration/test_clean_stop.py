"""Each long-running layer, started as an operator would and stopped with Ctrl-C (SIGINT), exits 0 and logs
no ERROR and no traceback."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from headwater import registry
from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.apps.als.pyfunc import ALSPyfuncModel
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer

READY = {"ingest-stream": "ingest batch", "speed": "speed batch", "serve": "following"}


def overrides(config) -> list[str]:
    keys = ["id", "app", "kafka.bootstrap-servers", "storage.root", "mlflow.tracking-uri", "stack.var-dir"]
    args = []
    for key in keys:
        args += ["-D", f'headwater.{key}="{config.get("headwater." + key)}"']
    return args + ["-D", "headwater.serving.port=0", "-D", "headwater.speed.trigger-interval-sec=0.5",
                   "-D", "headwater.ingest.trigger-interval-sec=0.5"]


@pytest.mark.parametrize("command", sorted(READY))
def test_a_layer_stopped_with_ctrl_c_exits_cleanly(broker_config, tmp_path, command):
    config = broker_config()
    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.input_topic: 2, config.update_topic: 1})
    rng = np.random.default_rng(0)
    factors = ALSFactors(["u0"], rng.normal(size=(1, 3)), ["i0", "i1"], rng.normal(size=(2, 3)), {},
                         ALSSettings(True, 0.1))
    factors.save(tmp_path / "m")
    registry.log_and_register(config, tmp_path / "m", ALSPyfuncModel(), {"layer": "batch"}, [registry.CHAMPION])
    log_path = tmp_path / f"{command}.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "headwater.cli", command, *overrides(config)],
                                   stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 120
        with LineProducer(bootstrap) as producer:
            while READY[command] not in log_path.read_text(errors="replace"):
                assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                producer.send_lines(config.input_topic, ["u0,i1,1"])
                time.sleep(1)
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0, log_path.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
    text = log_path.read_text(errors="replace")
    assert "Traceback" not in text and " ERROR " not in text, text[-3000:]
