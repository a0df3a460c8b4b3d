"""Automatic rollback (and promotion) on live traffic: a sequential test of two versions on the same events.

After a promotion the speed layer keeps the champion it replaced (its live model, which goes on learning
every event, as the new one does) and scores each micro-batch with both before learning it; the paired
per-event losses feed a :class:`headwater.sequential_test.SequentialTest` (``mode="rollback"``: is the new
champion worse?). Its threshold ``1/alpha`` bounds the chance of a false rollback over the whole rollout,
however often it is looked at. When it decides ``rollback``, ``champion`` moves back (update_offset tag,
alias, MODEL notice) and the decision is an MLflow run tagged ``headwater.decision = rollback`` with the
versions, events seen, each one's mean loss, the statistic and its threshold
(:func:`headwater.promotion.move_alias`). After ``headwater.rollout.max-events`` events without a
decision the new champion is kept and the old one dropped. With ``headwater.rollout.auto-promote`` the
same test in ``mode="promote"`` compares a ``challenger`` with the champion and promotes it when better.

The loss tested is the app's first of squared error, absolute error, 0/1 error, miss at 10, distance
(:data:`headwater.prequential.FIGURES` order) that both versions score.

>>> class Fixed:                          # a toy model with a fixed per-event loss
...     def __init__(self, loss): self.loss = loss
...     def score_many(self, rows): return {"squared_error": np.full(len(rows), self.loss)}
...     def learn_many(self, rows): return []
>>> import numpy as np
>>> rollout = Rollout("rollback", own=Fixed(1.0), own_version=4, other_version=5,
...                   test=SequentialTest("rollback", versions={"new": "5", "old": "4"}))
>>> [rollout.observe(list(range(100)), Fixed(1.5 + 0.01 * k)) for k in range(8)]   # 100 events a batch
[None, None, None, None, None, 'rollback', 'rollback', 'rollback']
>>> rollout.target_version, rollout.test.decision_record()["tags"]
(4, {'headwater.decision': 'rollback'})
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any

from headwater import prequential, promotion, registry
from headwater.sequential_test import SequentialTest

log = logging.getLogger(__name__)


def loss_to_compare(new: dict, old: dict) -> str | None:
    """The loss both versions' scores have, in :data:`headwater.prequential.FIGURES` order."""
    return next((name for name in prequential.FIGURES if name in new and name in old), None)


class Rollout:
    """One running comparison. ``own`` is the model this object keeps learning (the previous champion in a
    rollback test, the challenger in a promotion test); the champion's live model is passed to ``observe``."""

    def __init__(self, mode: str, own: Any, own_version: int, other_version: int, test: SequentialTest):
        self.mode, self.own, self.test = mode, own, test
        self.own_version, self.other_version = own_version, other_version

    @classmethod
    def from_config(cls, config, mode: str, own: Any, own_version: int, champion_version: int) -> Rollout:
        r = config.section("headwater.rollout")
        new, old = (champion_version, own_version) if mode == "rollback" else (own_version, champion_version)
        test = SequentialTest(mode, alpha=r["alpha"], block_size=r["block-size"], margin=r["margin"],
                              prior_scale=r["prior-scale"], max_events=r["max-events"],
                              versions={"new": str(new), "old": str(old)})
        log.info("speed layer: %s test of version %s against %s started (alpha %s, at most %s events)", mode,
                 new, old, r["alpha"], r["max-events"])
        return cls(mode, own, own_version, champion_version, test)

    @property
    def target_version(self) -> int:
        """The version ``champion`` moves to when the test decides (the previous one, or the challenger)."""
        return self.own_version

    def observe(self, parsed: Any, champion_live: Any, champion_scores: dict | None = None) -> str | None:
        """Score the batch with both versions (``champion_scores``: the champion's, when already computed),
        then fold it into the kept one; the decision when reached. ``last_scores``: the kept one's losses."""
        self.last_scores = self.own.score_many(parsed)
        if self.test.decision is None:
            champion_scores = champion_live.score_many(parsed) if champion_scores is None else champion_scores
            own_scores = self.last_scores
            new, old = (champion_scores, own_scores) if self.mode == "rollback" else (own_scores, champion_scores)
            loss = loss_to_compare(new, old)
            if loss is not None:
                self.test.update(new[loss], old[loss])
        self.own.learn_many(parsed)
        return self.test.decision

    def reason(self) -> str:
        st, metrics = self.test.state, self.test.decision_record()["metrics"]
        versions = st["versions"]
        return (f"sequential {self.mode} test: version {versions['new']} mean loss {metrics['mean_loss_new']:.6g} vs "
                f"{versions['old']} at {metrics['mean_loss_old']:.6g} over {st['events']} live events; e-value "
                f"{metrics['e_value']:.4g} >= {metrics['threshold_e_value']:.4g} (alpha {st['alpha']})")


class RolloutGuard:
    """The speed layer's running rollback test: started on a rebase, fed each micro-batch, acting on its decision."""

    def __init__(self, config):
        self.config = config
        self.current: Rollout | None = None     # the rollback test of the newest champion
        self.challenge: Rollout | None = None   # the promotion test of the challenger (auto-promote)
        self.decided: list[Rollout] = []
        self.scores: dict[str, dict] = {}       # the last micro-batch's losses of each version under test

    def start_challenge(self, state, challenger: Any, version: int) -> None:
        """Test a newly loaded ``challenger`` against the champion (``headwater.rollout.auto-promote``)."""
        if self.config.get("headwater.rollout.auto-promote") and version != state.base_version:
            self.challenge = Rollout.from_config(self.config, "promote", challenger, version, state.base_version)

    def start(self, state, new_version: int) -> None:
        """Keep the champion being replaced (``state.live``) to test ``new_version`` against it, unless the move
        was a rollback or ``headwater.rollout.auto-rollback`` is off. Under the state lock, before the install."""
        self.current = None
        if not self.config.get("headwater.rollout.auto-rollback") or state.live is None:
            return
        moves = promotion.history(self.config, registry.CHAMPION)
        if moves and moves[-1]["version"] == str(new_version) and moves[-1]["decision"] == "rollback":
            return
        self.current = Rollout.from_config(self.config, "rollback", state.live, state.base_version, new_version)

    def observe(self, state, parsed: Any, champion_scores: dict | None = None) -> list[str]:
        """One micro-batch into the running tests (under the state lock, before the champion learns it);
        the decisions reached. ``scores``: each tested version's per-event losses, ``{"live v<N>": ...}``."""
        decisions = []
        self.scores = {}
        for slot in ("current", "challenge"):
            rollout = getattr(self, slot)
            if rollout is None or rollout.own_version == state.base_version or rollout.other_version != \
                    state.base_version:   # a test of another champion than the one now live
                continue
            decision = rollout.observe(parsed, state.live, champion_scores)
            self.scores[f"live v{rollout.own_version}"] = rollout.last_scores
            if decision is None:
                continue
            setattr(self, slot, None)
            self.decided.append(rollout)
            decisions.append(decision)
            if decision in ("rollback", "promote"):
                # in a thread of its own: the MODEL notice it publishes makes the layer rebase, under the lock
                threading.Thread(target=self._move, args=(rollout,), name=f"speed-{decision}", daemon=True).start()
            else:
                log.info("speed layer: %s test ended with %s after %d events", rollout.mode, decision,
                         rollout.test.state["events"])
        return decisions

    def _move(self, rollout: Rollout) -> None:
        record = rollout.test.decision_record()
        decision = rollout.test.decision
        cause = promotion.CAUSE_AUTO_ROLLBACK if decision == "rollback" else promotion.CAUSE_AUTO_PROMOTE
        try:
            promotion.move_alias(self.config, registry.CHAMPION, rollout.target_version, cause, rollout.reason(),
                                 decision=decision, params=record["params"], metrics=record["metrics"],
                                 artifacts={"sequential_test.json": json.loads(rollout.test.to_json())})
        except Exception:  # the champion serves on; the operator can still move it by hand
            log.exception("speed layer: the automatic %s to version %s failed", decision, rollout.target_version)
