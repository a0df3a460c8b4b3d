"""Fault suite, speed layer (ALS, implicit: strengths add up, so an event folded twice or lost shows).

1. The speed layer (``python -m speed_layer``) is SIGKILLed three times while 20,000 events stream in;
   the model the serving layer ends with equals an offline fold of the same events onto the champion,
   batch by batch as the BATCH records on the update topic say they were folded.
5. A new champion is promoted while the speed layer streams: no user learned since the old champion's
   cut-off disappears from serving, neither after the switch nor (as far as a client polling all the
   time sees) during it.
"""
from __future__ import annotations

import random
import threading
import time

import numpy as np

from headwater import registry
from headwater.app_checks import assert_same_state
from headwater.apps.als.events import ALSFormat
from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.apps.als.pyfunc import ALSPyfuncModel
from headwater.kafka_admin import ensure_topics, read_range, true_end_offsets
from headwater.kafka_producer import LineProducer
from headwater.messages import MessageType, decode_update
from headwater.topic_tail import TopicTail
from serving_layer.app import create_app
from serving_layer.app_context import MODELS
from speed_layer.als import ALSSpeedModel
from speed_layer.runner import SpeedLayer
from tests.integration.processes import kill_group, start_layer, stop_group, wait_until, write_conf
from tests.integration.test_faults_serving import promote_version

EVENTS = 20_000
KILLS = 3
FEATURES = 6
STREAM = {"speed.trigger-interval-sec": 0.3, "speed.snapshot-interval-sec": 2, "kafka.input-partitions": 2,
          "kafka.poll-timeout-ms": 200, "kafka.max-records-per-trigger": 1500}


def register_champion(config, tmp_path, users: list[str], seed: int, aliases=(registry.CHAMPION,)):
    """A champion as a batch run would leave it: factors, its data cut-off and update offset."""
    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    rng = np.random.default_rng(seed)
    items = [f"i{n}" for n in range(300)]
    factors = ALSFactors(users, rng.normal(0, 0.3, (len(users), FEATURES)), items,
                         rng.normal(0, 0.3, (300, FEATURES)), {u: {items[n % 300]} for n, u in enumerate(users)},
                         ALSSettings(True, regularization=0.1))
    factors.save(tmp_path / f"champion-{seed}")
    tags = {"layer": "batch",
            registry.TAG_INPUT_OFFSETS: registry.offsets_tag(true_end_offsets(bootstrap, config.input_topic)),
            registry.TAG_UPDATE_OFFSET: registry.offsets_tag(true_end_offsets(bootstrap, config.update_topic))}
    return registry.log_and_register(config, tmp_path / f"champion-{seed}", ALSPyfuncModel(), tags, list(aliases))


def event(n: int) -> str:
    # timestamps fix the order inside a batch (the ALS speed model sorts by them), whatever the partitions
    return f"u{(n * 7919) % 1500},i{(n * 104729) % 400},1,{1_700_000_000_000 + n}"


class UpdateRecords:
    """Every decoded message on the update topic, in order."""

    def __init__(self, config):
        self.messages: list = []
        self._lock = threading.Lock()
        self.tail = TopicTail(config.get("headwater.kafka.bootstrap-servers"), config.update_topic, self._add,
                              start="earliest", poll_timeout_ms=200).start()

    def _add(self, records) -> None:
        with self._lock:
            self.messages.extend(decode_update(r.value) for r in records)

    def batches(self) -> list:
        with self._lock:
            return [m.payload for m in self.messages if m is not None and m.type is MessageType.BATCH]


def offline_fold(config, champion, batches) -> ALSSpeedModel:
    """The champion with each recorded batch's input range folded in, in order, as the speed layer did."""
    model = ALSSpeedModel.from_registered(champion)
    fmt = ALSFormat.from_config(config)
    covered = registry.parse_offsets_tag(champion.tags[registry.TAG_INPUT_OFFSETS])
    for record in batches:
        records = read_range(config.get("headwater.kafka.bootstrap-servers"), config.input_topic, covered,
                             record.input_offsets)
        model.learn_many(fmt.parse([r.value.decode() for r in records]).table)
        covered = dict(record.input_offsets)
    return model


def test_a_speed_layer_killed_three_times_folds_every_event_once(broker_config, tmp_path):
    config = broker_config(**STREAM)
    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.input_topic: 2, config.update_topic: 1})
    champion = register_champion(config, tmp_path, [f"u{n}" for n in range(0, 1500, 3)], seed=1)
    updates = UpdateRecords(config)
    app = create_app(config)
    manager = app.extensions[MODELS]
    conf = write_conf(tmp_path / "speed.conf", config, **STREAM)
    log_path = tmp_path / "speed.log"
    sent = [0]
    killed = threading.Event()

    def stream():
        with LineProducer(bootstrap) as producer:
            for start in range(0, EVENTS, 250):
                if start == EVENTS * 3 // 4:  # however slow the restarts, the last kill falls mid-stream
                    killed.wait(600)
                producer.send_lines_acknowledged(config.input_topic, [event(n) for n in range(start, start + 250)])
                sent[0] = start + 250
                time.sleep(0.6)  # ~50 s of streaming: time for three kills and restarts of a Spark process

    rng = random.Random(9)
    speed = start_layer("speed_layer", conf, log_path)
    streamer = threading.Thread(target=stream, daemon=True)
    try:
        wait_until(lambda: manager.ready_reason() is None, "serving ready")
        streamer.start()
        kills, mid_stream = 0, 0
        while kills < KILLS:
            seen = len(updates.batches())
            # killed at a random moment after this process published something of its own
            wait_until(lambda seen=seen: len(updates.batches()) > seen, "a published batch", timeout=120,
                       process=speed, log_path=log_path)
            time.sleep(rng.uniform(0.0, 1.5))
            kill_group(speed)
            kills += 1
            mid_stream += sent[0] < EVENTS
            print(f"kill {kills} after {sent[0]} events sent, {len(updates.batches())} batches published")
            speed = start_layer("speed_layer", conf, log_path)
        killed.set()
        streamer.join(timeout=300)
        assert sent[0] == EVENTS
        assert kills == KILLS and mid_stream >= 2, "the kills fell while events were streaming"
        wait_until(lambda: (b := updates.batches()) and sum(b[-1].input_offsets.values()) == EVENTS,
                   "the last event folded", timeout=180, process=speed, log_path=log_path)
        wait_until(lambda: manager._tail is not None and manager._tail.caught_up(), "serving caught up")
        served = manager.model.state_summary()
    finally:
        stop_group(speed)
        manager.stop()
        updates.tail.stop()

    batches = [b for b in updates.batches() if b.base_version == champion.version]
    # each published batch starts where the one before it ends: nothing skipped, nothing folded twice
    assert sum(b.events for b in batches) == EVENTS
    expected = offline_fold(config, champion, batches).state_summary()
    assert_same_state(expected, served, "served after 3 kills vs an offline fold")


def test_a_champion_promoted_while_the_speed_layer_streams_loses_no_user(broker_config, spark, tmp_path):
    config = broker_config(**STREAM)
    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.input_topic: 2, config.update_topic: 1})
    register_champion(config, tmp_path, [f"old{n}" for n in range(50)], seed=1)
    layer = SpeedLayer(config).start()
    app = create_app(config)
    manager, client = app.extensions[MODELS], app.test_client()
    seen: set[str] = set()
    vanished: list[tuple[str, int | None]] = []
    stop = threading.Event()

    def send(users):
        with LineProducer(bootstrap) as producer:
            producer.send_lines_acknowledged(config.input_topic,
                                             [f"{u},i{(hash(u) + k) % 300},1" for u in users for k in range(3)])

    def watch():
        # a client asking for every user it has seen: one that answered once must keep answering
        # (/recommend: 404 for a user the model does not know; /knownItems answers [] for one, as Oryx)
        while not stop.is_set():
            for user in sorted(seen):
                if client.get(f"/recommend/{user}?howMany=1").status_code == 404:
                    vanished.append((user, getattr(manager.model, "version", None)))
            for user in [u for u in wanted if u not in seen]:
                if client.get(f"/recommend/{user}?howMany=1").status_code == 200:
                    seen.add(user)
            time.sleep(0.05)

    wanted = [f"before{n}" for n in range(20)] + [f"after{n}" for n in range(20)] + [f"during{n}" for n in range(20)]
    watcher = threading.Thread(target=watch, daemon=True)
    try:
        assert layer.wait_ready(120)
        wait_until(lambda: manager.ready_reason() is None, "serving ready")
        watcher.start()
        send(wanted[:20])  # learned by the speed layer; the next champion's data includes them
        wait_until(lambda: seen >= set(wanted[:20]), "the first users served")
        # the next champion as a batch run would build it now: trained on the history and these users
        second = register_champion(config, tmp_path, [f"old{n}" for n in range(50)] + wanted[:20], seed=2,
                                   aliases=())
        send(wanted[20:40])  # after the new champion's cut-off: only the speed layer knows them
        wait_until(lambda: seen >= set(wanted[:40]), "the users after the cut-off served")
        streaming = threading.Thread(target=lambda: [send([u]) or time.sleep(0.1) for u in wanted[40:]])
        streaming.start()
        promote_version(config, second.version)
        streaming.join(timeout=60)
        wait_until(lambda: getattr(manager.model, "version", None) == second.version, "serving the new champion")
        wait_until(lambda: layer.state.base_version == second.version, "the speed layer rebased")
        wait_until(lambda: seen >= set(wanted), "every user served", timeout=60)
        time.sleep(2)  # the watcher goes on through the switch's aftermath
    finally:
        stop.set()
        watcher.join(timeout=10)
        manager.stop()
        layer.stop()
    assert not vanished, f"users that went 404 after they were served: {vanished[:10]}"
    # and serving holds what the speed layer holds for them, on the new champion
    with layer.state.lock:
        live = layer.state.live.state
    for user in wanted:
        assert sorted(client.get(f"/knownItems/{user}").text.split()) == sorted(live.known_items(user)), user
