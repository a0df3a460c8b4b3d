"""ModelState: which update-topic records the speed layer applies, and what a snapshot records."""
from __future__ import annotations

from speed_layer.model_state import ModelState


class Recorder:
    """A toy speed model: remembers payloads by id, learns one payload per event."""

    def __init__(self, values=None):
        self.values = dict(values or {})

    def learn_many(self, events):
        payloads = [[event, f"learned-{event}"] for event in events]
        for payload in payloads:
            self.apply_update(payload)
        return payloads

    def apply_update(self, payload):
        if len(payload) != 2:
            raise ValueError("bad payload")
        self.values[payload[0]] = payload[1]

    def copy(self):
        return Recorder(self.values)


def test_own_records_of_the_current_model_are_skipped_others_applied():
    state = ModelState("speed-a")
    state.install(Recorder(), base_version=1, position=5)
    payloads, key = state.learn(["u1"])
    # another process overwrote u1 after us: applied; our own older record replayed: skipped
    state.on_update(5, key, payloads[0])
    state.on_update(6, b"speed-b/0", ["u1", "from-b"])
    state.on_update(7, key, ["u1", "stale-own"])
    assert state.model.values["u1"] == "from-b"
    assert state.position == 8


def test_own_records_learned_on_the_previous_model_are_applied_after_a_rebase():
    state = ModelState("speed-a")
    state.install(Recorder(), base_version=1, position=0)
    payloads, old_key = state.learn(["u1"])
    state.install(Recorder({"u9": "champion"}), base_version=2)  # the MODEL notice was read
    assert state.generation == 1 and state.key() != old_key and state.position == 0
    # learned on version 1 but after the notice on the topic: serving applies it to version 2, so do we
    state.on_update(3, old_key, payloads[0])
    assert state.model.values == {"u9": "champion", "u1": "learned-u1"}


def test_bad_and_non_up_records_only_advance_the_position():
    state = ModelState("speed-a")
    state.install(Recorder(), base_version=1, position=0)
    state.on_update(0, None, ["too", "many", "fields"])
    state.on_update(1, None, None)
    assert state.model.values == {} and state.position == 2 and state.changes == 0


def test_snapshots_freeze_a_copy_and_only_when_something_changed():
    state = ModelState("speed-a")
    assert state.frozen() is None
    state.install(Recorder(), base_version=3, position=10)
    assert state.frozen() is None
    state.learn(["u1", "u2"])
    state.on_update(10, b"other", ["u3", "x"])
    model, base, position, changes = state.frozen()
    assert (base, position, changes) == (3, 11, 3)
    state.learn(["u4"])
    assert "u4" not in model.values  # an independent copy
    assert state.frozen()[3] == 1
    state.unfreeze(5)  # a failed registration counts its changes again
    assert state.frozen()[3] == 5
