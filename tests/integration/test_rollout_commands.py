"""The operator's commands against a running serving replica: `headwater promote`, `headwater rollback`,
`headwater history`, each a real `python -m headwater.cli` process on the test's broker and registry."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from headwater import promotion, registry
from headwater.apps.als.pyfunc import ALSPyfuncModel
from headwater.embedded import free_port
from headwater.kafka_admin import ensure_topics
from headwater.messages import MessageType
from tests.integration.processes import REPO, get, start_layer, stop_group, wait_until, write_conf
from tests.integration.test_batch_als import read_notices
from tests.integration.test_faults_serving import champion_factors


def headwater(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "headwater.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)


def register(config, tmp_path, seed: int, gate: str) -> int:
    champion_factors(seed).save(tmp_path / f"model-{seed}")
    return registry.log_and_register(config, tmp_path / f"model-{seed}", ALSPyfuncModel(),
                                     {"layer": "batch", promotion.TAG_GATE: gate}, aliases=[]).version


def served_version(url: str, query: str = "") -> int | None:
    """The version `/recommend/<known user>` answers from (its X-Headwater-Model-Version header)."""
    answer = get(url, f"/recommend/u3{query}")
    if answer is None or answer.status_code != 200:
        return None
    return int(answer.headers["X-Headwater-Model-Version"])


def test_promote_then_rollback_move_what_serving_answers_from_and_history_lists_both(broker_config, tmp_path):
    config = broker_config()
    ensure_topics(config.kafka, {config.input_topic: 1, config.update_topic: 1})
    first = register(config, tmp_path, seed=1, gate="passed")
    promotion.move_alias(config, registry.CHAMPION, first, promotion.CAUSE_BATCH, "score 0.9; no champion")
    failed = register(config, tmp_path, seed=2, gate="failed")   # the gate refused it: registered, no alias
    assert registry.get_alias_version(config, registry.CHAMPION) == first
    port = free_port()
    conf = write_conf(tmp_path / "serving.conf", config, **{"serving.port": port})
    url, log_path = f"http://127.0.0.1:{port}", tmp_path / "serving.log"
    server = start_layer("serving_layer", conf, log_path)
    try:
        wait_until(lambda: served_version(url) == first, "serving the first champion", process=server,
                   log_path=log_path)
        missing = get(url, "/recommend/u3?version=999")
        assert missing.status_code == 404 and missing.json()["loaded"] == [first]
        done = headwater("promote", "--conf", str(conf), "--version", str(failed))
        assert done.returncode == 0, done.stderr
        started = time.monotonic()
        wait_until(lambda: served_version(url) == failed, "serving the promoted version", timeout=60,
                   process=server, log_path=log_path)
        seconds = {"promote": time.monotonic() - started}
        # the previous champion stays loaded: asked for by number it answers, as itself
        assert served_version(url, f"?version={first}") == first
        assert get(url, f"/recommend/u3?version={first}").json() != get(url, "/recommend/u3").json()
        done = headwater("rollback", "--conf", str(conf))
        assert done.returncode == 0, done.stderr
        assert f"back at version {first}" in done.stdout
        started = time.monotonic()
        wait_until(lambda: served_version(url) == first, "serving the first champion again", timeout=60,
                   process=server, log_path=log_path)
        seconds["rollback"] = time.monotonic() - started
        print(f"seconds until /recommend answered from the moved version: {seconds}")
    finally:
        stop_group(server)
    # the champion was loaded once at start: its own MODEL notice (the promotion it started after) loads nothing
    loads = [line for line in log_path.read_text().splitlines() if "loaded registry version" in line]
    assert len(loads) == 3, loads   # start, promote, rollback
    listed = headwater("history", "--conf", str(conf))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 3, listed.stdout
    assert f"-> v{first}" in lines[0] and "batch gate" in lines[0]
    assert f"v{first} -> v{failed}" in lines[1] and "promote" in lines[1] and "operator" in lines[1]
    assert f"v{failed} -> v{first}" in lines[2] and "rollback" in lines[2] and "operator" in lines[2]
    # each move was announced on the update topic, in order
    notices = [m for m in read_notices(config.get("headwater.kafka.bootstrap-servers"), config.update_topic)
               if m.type is MessageType.MODEL]
    assert [n.payload.version for n in notices] == [first, failed, first]
    # the version tags of the versions moved
    tags = registry.client(config).get_model_version(config.app_id, str(failed)).tags
    assert tags[promotion.TAG_GATE] == "failed" and registry.TAG_UPDATE_OFFSET in tags


def test_promote_of_an_unknown_version_and_rollback_without_history_are_clear_errors(broker_config, tmp_path):
    config = broker_config()
    ensure_topics(config.kafka, {config.input_topic: 1, config.update_topic: 1})
    conf = write_conf(tmp_path / "ops.conf", config)
    done = headwater("promote", "--conf", str(conf), "--version", "999")
    assert done.returncode == 2 and "has no version 999" in done.stderr
    done = headwater("rollback", "--conf", str(conf))
    assert done.returncode == 2 and "no champion" in done.stderr
    assert registry.get_alias_version(config, registry.CHAMPION) is None
