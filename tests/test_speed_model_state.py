"""ModelState: the live model and the champion alone, the input they cover, what a snapshot freezes."""
from __future__ import annotations

import numpy as np

from speed_layer.model_state import ModelState


class Counter:
    """A toy speed model: counts events; its score is 1 for every event (so sums count events)."""

    def __init__(self, n: int = 0):
        self.n = n

    def learn_many(self, events):
        self.n += len(events)
        return [self.n]

    def score_many(self, events):
        return {"error": np.ones(len(events))}

    def copy(self):
        return Counter(self.n)


def test_learning_moves_the_live_model_and_the_covered_input_not_the_champion():
    state = ModelState()
    state.install(Counter(5), Counter(5), base_version=2, covered={0: 10, 1: 4})
    assert state.score(["a", "b"])["champion"]["error"].sum() == 2
    assert state.learn(["a", "b"], covered={1: 6}) == [7]
    assert (state.live.n, state.champion.n, state.covered) == (7, 5, {0: 10, 1: 6})


def test_snapshots_freeze_a_copy_and_only_when_something_changed():
    state = ModelState()
    assert state.frozen() is None
    state.install(Counter(), Counter(), base_version=3, covered={0: 0}, update_offset=10)
    assert state.frozen() is None
    state.learn(["u1", "u2"], covered={0: 2})
    state.published(14)
    frozen = state.frozen()
    assert (frozen.base_version, frozen.covered, frozen.update_offset, frozen.changes) == (3, {0: 2}, 14, 1)
    state.learn(["u4"], covered={0: 3})
    assert frozen.model.n == 2 and frozen.covered == {0: 2}  # independent of what came after
    state.unfreeze(5)  # a failed registration counts its changes again
    assert state.frozen().changes == 6


def test_a_rebase_replaces_both_models_and_their_position():
    state = ModelState()
    state.install(Counter(), Counter(), base_version=1, covered={0: 50}, update_offset=7)
    state.learn(["x"], covered={0: 51})
    state.install(Counter(100), Counter(100), base_version=2, covered={0: 40}, update_offset=state.update_offset)
    assert (state.base_version, state.covered, state.update_offset, state.changes) == (2, {0: 40}, 7, 0)
