"""The rollback test on real speed models replaying live events: a bad version is caught within 2,000 events,
a version equal to the champion is kept over a 20,000-event replay; both versions learn every event."""
from __future__ import annotations

import types

import numpy as np

from headwater.apps.als.events import ALSFormat
from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.config import load_config
from speed_layer.als import ALSSpeedModel
from speed_layer.rollout import CHALLENGER, PREVIOUS, Rollout, RolloutGuard

USERS, ITEMS = 1000, 1000


def factors(seed: int, scale: float) -> ALSFactors:
    rng = np.random.default_rng(seed)
    return ALSFactors([f"u{n}" for n in range(USERS)], rng.normal(0, scale, (USERS, 4)),
                      [f"i{n}" for n in range(ITEMS)], rng.normal(0, scale, (ITEMS, 4)), {},
                      ALSSettings(False, regularization=0.1, bias_regularization=2.0), mu=3.5,
                      user_bias=rng.normal(0, 0.3, USERS), item_bias=rng.normal(0, 0.3, ITEMS))


def replay(champion: ALSFactors, previous: ALSFactors, events: int, batch: int = 500) -> Rollout:
    """``champion`` newly promoted over ``previous``; live events rated by the truth (= ``previous``)."""
    config = load_config(overrides=["headwater.id=r", "headwater.app=als", f"headwater.rollout.max-events={events}"])
    live = ALSSpeedModel.from_factors(champion)
    rollout = Rollout.from_config(config, PREVIOUS, ALSSpeedModel.from_factors(previous), 1, 2, tested=True)
    rng = np.random.default_rng(7)
    parse = ALSFormat().parse
    for _ in range(0, events, batch):
        users, items = rng.integers(0, USERS, batch), rng.integers(0, ITEMS, batch)
        ratings = np.clip(previous.estimates(users, items) + rng.normal(0, 0.3, batch), 0.5, 5.0)
        parsed = parse([f"u{u},i{i},{r:.3f}" for u, i, r in zip(users, items, ratings)]).table
        if rollout.observe(parsed, live) is not None:
            return rollout
        live.learn_many(parsed)
    return rollout


def test_a_bad_version_is_rolled_back_within_2000_events():
    rollout = replay(factors(2, 0.5), factors(1, 0.5), 2_000)
    assert rollout.test.decision == "rollback" and rollout.test.state["decided_at_event"] <= 2_000
    assert rollout.target_version == 1
    assert "mean loss" in rollout.reason()


def test_a_version_equal_to_the_champion_is_kept_over_20000_events():
    rollout = replay(factors(1, 0.5), factors(1, 0.5), 20_000)
    assert rollout.test.decision == "keep" and rollout.test.state["events"] == 20_000
    assert rollout.test.state["max_log_e"] == 0.0      # identical losses on every event: no evidence at all


def test_a_challenger_learns_and_publishes_beside_the_champion_and_its_test_resumes_from_its_record():
    """Without a broker: the guard's side of it (the alias move itself: tests/integration/test_challenger.py)."""
    config = load_config(overrides=["headwater.id=r", "headwater.app=als", "headwater.rollout.auto-promote=true"])
    truth, worse = factors(1, 0.5), factors(2, 0.5)
    state = types.SimpleNamespace(live=ALSSpeedModel.from_factors(worse), base_version=3)
    guard = RolloutGuard(config)
    guard._act = lambda rollout: None     # acting is the alias move: not here
    guard.start_challenge(state, ALSSpeedModel.from_factors(truth), 4)
    rng, parse = np.random.default_rng(5), ALSFormat().parse

    def batch(n=500):
        users, items = rng.integers(0, USERS, n), rng.integers(0, ITEMS, n)
        ratings = np.clip(truth.estimates(users, items) + rng.normal(0, 0.3, n), 0.5, 5.0)
        return parse([f"u{u},i{i},{r:.3f}" for u, i, r in zip(users, items, ratings)]).table

    assert guard.observe(state, batch(100)) == []      # one block: not yet evidence enough
    assert set(guard.payloads) == {4} and guard.payloads[4] and set(guard.scores) == {"live v4"}
    record = guard.records()
    assert record[0]["role"] == CHALLENGER and record[0]["test"]["events"] == 100
    resumed = RolloutGuard(config)
    resumed._act = guard._act
    resumed.resume(state, record, lambda version: ALSSpeedModel.from_factors(truth))
    assert resumed.records() == record
    decisions = []
    for _ in range(8):
        decisions += resumed.observe(state, batch())
    assert decisions == ["promote"] and resumed.decided[0].target_version == 4
    assert resumed.beside[CHALLENGER].test.state["events"] > 100     # it went on from the recorded state
