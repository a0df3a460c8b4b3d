"""The versions that learn beside the champion, and the sequential tests that move ``champion`` between them.

Besides the champion the speed layer keeps up to two live versions, each learning every micro-batch
and publishing its UPs under its own version (so a serving replica's copy of it stays current):

- the **previous** champion, after a promotion: the live model it was (batch + speed), so a rollback
  lands on a current model. With ``headwater.rollout.auto-rollback`` a sequential test on the paired
  per-event losses (:class:`headwater.sequential_test.SequentialTest`, ``mode="rollback"``: is the
  new champion worse?) moves ``champion`` back when it decides ``rollback``. Its threshold ``1/alpha``
  bounds the chance of a false rollback over the whole rollout, however often it is looked at. After
  ``headwater.rollout.max-events`` events without a decision the test ends (``keep``);
- the **challenger** (the alias), from when its MODEL notice arrives. With
  ``headwater.rollout.auto-promote`` the same test in ``mode="promote"`` promotes it when better.

Every decision that moves the alias is an MLflow run tagged ``headwater.decision`` with the versions,
events seen, each one's mean loss, the statistic and its threshold (:func:`headwater.promotion.move_alias`).
The loss tested is the app's first of squared error, absolute error, 0/1 error, miss at 10, distance
(:data:`headwater.prequential.FIGURES` order) that both versions score. :meth:`RolloutGuard.records`
is what a BATCH record and a snapshot keep of all this, so a restarted speed layer resumes the tests.

>>> class Fixed:                          # a toy model with a fixed per-event loss
...     def __init__(self, loss): self.loss = loss
...     def score_many(self, rows): return {"squared_error": np.full(len(rows), self.loss)}
...     def learn_many(self, rows): return [["UP of", self.loss]]
>>> import numpy as np
>>> rollout = Rollout(PREVIOUS, own=Fixed(1.0), own_version=4, other_version=5,
...                   test=SequentialTest("rollback", versions={"new": "5", "old": "4"}))
>>> [rollout.observe(list(range(100)), Fixed(1.5 + 0.01 * k)) for k in range(8)]   # 100 events a batch
[None, None, None, None, None, 'rollback', None, None]
>>> rollout.target_version, rollout.test.decision_record()["tags"], rollout.last_payloads
(4, {'headwater.decision': 'rollback'}, [['UP of', 1.0]])
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from headwater import prequential, promotion, registry
from headwater.sequential_test import SequentialTest

log = logging.getLogger(__name__)

# The roles of a version learning beside the champion (as the serving layer names them).
PREVIOUS, CHALLENGER = "previous", "challenger"
_MODE = {PREVIOUS: "rollback", CHALLENGER: "promote"}


def loss_to_compare(new: dict, old: dict) -> str | None:
    """The loss both versions' scores have, in :data:`headwater.prequential.FIGURES` order."""
    return next((name for name in prequential.FIGURES if name in new and name in old), None)


class Rollout:
    """One version learning beside the champion (``other_version``): ``own`` learns every micro-batch; with a
    ``test``, the paired per-event losses of the two decide whether ``champion`` moves to ``own_version``."""

    def __init__(self, role: str, own: Any, own_version: int, other_version: int, test: SequentialTest | None):
        self.role, self.own, self.test = role, own, test
        self.own_version, self.other_version = own_version, other_version
        self.last_scores: dict = {}
        self.last_payloads: list = []

    @classmethod
    def from_config(cls, config, role: str, own: Any, own_version: int, champion_version: int,
                    tested: bool, state: dict | None = None) -> Rollout:
        """``tested``: with a sequential test (from ``headwater.rollout.*``, or resumed from ``state``)."""
        test = None
        if state is not None:
            test = SequentialTest.from_json(state)
        elif tested:
            r = config.section("headwater.rollout")
            new, old = (champion_version, own_version) if role == PREVIOUS else (own_version, champion_version)
            test = SequentialTest(_MODE[role], alpha=r["alpha"], block_size=r["block-size"], margin=r["margin"],
                                  prior_scale=r["prior-scale"], max_events=r["max-events"],
                                  versions={"new": str(new), "old": str(old)})
        log.info("speed layer: version %s learns beside champion %s as the %s%s", own_version, champion_version,
                 role, "" if test is None else f" ({test.state['mode']} test, alpha {test.state['alpha']}, "
                                               f"{test.state['events']} of at most {test.state['max_events']} events)")
        return cls(role, own, own_version, champion_version, test)

    @property
    def target_version(self) -> int:
        """The version ``champion`` moves to when the test decides (the previous one, or the challenger)."""
        return self.own_version

    def observe(self, parsed: Any, champion_live: Any, champion_scores: dict | None = None) -> str | None:
        """Score the batch with this version (and feed the test), then learn it; the decision if reached now.

        ``champion_scores``: the champion's losses, when already computed. Afterwards ``last_scores`` holds
        this version's losses and ``last_payloads`` the UPs its learning produced."""
        self.last_scores = self.own.score_many(parsed)
        decided = None
        if self.test is not None and self.test.decision is None:
            champion_scores = champion_live.score_many(parsed) if champion_scores is None else champion_scores
            new, old = ((champion_scores, self.last_scores) if self.role == PREVIOUS
                        else (self.last_scores, champion_scores))
            loss = loss_to_compare(new, old)
            if loss is not None:
                decided = self.test.update(new[loss], old[loss])
        self.last_payloads = self.own.learn_many(parsed)
        return decided

    def record(self) -> dict:
        """What a BATCH record and a snapshot keep: role, versions and the test's state."""
        return {"role": self.role, "version": self.own_version, "champion": self.other_version,
                "test": None if self.test is None else json.loads(self.test.to_json())}

    def reason(self) -> str:
        st, metrics = self.test.state, self.test.decision_record()["metrics"]
        versions = st["versions"]
        return (f"sequential {st['mode']} test: version {versions['new']} mean loss {metrics['mean_loss_new']:.6g} "
                f"vs {versions['old']} at {metrics['mean_loss_old']:.6g} over {st['events']} live events; e-value "
                f"{metrics['e_value']:.4g} >= {metrics['threshold_e_value']:.4g} (alpha {st['alpha']})")


class RolloutGuard:
    """The previous champion and the challenger beside the live champion: fed each micro-batch, acting on the
    tests' decisions. Called under the speed layer's state lock."""

    def __init__(self, config):
        self.config = config
        self.beside: dict[str, Rollout] = {}    # role -> the version in it
        self.decided: list[Rollout] = []
        self.scores: dict[str, dict] = {}       # the last micro-batch's losses of each version beside the champion
        self.payloads: dict[int, list] = {}     # the last micro-batch's UPs of each version beside the champion

    @property
    def auto_rollback(self) -> bool:
        return bool(self.config.get("headwater.rollout.auto-rollback"))

    @property
    def auto_promote(self) -> bool:
        return bool(self.config.get("headwater.rollout.auto-promote"))

    def versions(self) -> dict[int, str]:
        """Version -> role of the versions learning beside the champion."""
        return {rollout.own_version: role for role, rollout in self.beside.items()}

    def start_challenge(self, state, challenger: Any, version: int) -> None:
        """Learn a newly loaded ``challenger`` beside the champion, tested against it with auto-promote."""
        if version == state.base_version:
            self.beside.pop(CHALLENGER, None)
            return
        self.beside[CHALLENGER] = Rollout.from_config(self.config, CHALLENGER, challenger, version,
                                                      state.base_version, tested=self.auto_promote)

    def start(self, state, new_version: int) -> None:
        """``new_version`` replaces the champion: keep the live model being replaced (``state.live``) as the
        previous one, tested against the new one unless the move was a rollback or auto-rollback is off; a
        challenger is now compared with the new champion. Under the state lock, before the install."""
        challenger = self.beside.pop(CHALLENGER, None)
        self.beside.pop(PREVIOUS, None)
        if challenger is not None and challenger.own_version != new_version:
            self.beside[CHALLENGER] = Rollout.from_config(self.config, CHALLENGER, challenger.own,
                                                          challenger.own_version, new_version, self.auto_promote)
        if state.live is None:
            return
        replaced = promotion.replaced_champion(self.config, new_version)
        rolled_back = replaced is not None and replaced[1] == "rollback"
        self.beside[PREVIOUS] = Rollout.from_config(self.config, PREVIOUS, state.live, state.base_version,
                                                    new_version, tested=self.auto_rollback and not rolled_back)

    def resume(self, state, records: list[dict] | None, load: Callable[[int], Any]) -> None:
        """After a restart: the versions a BATCH record or snapshot kept (``records``), each model rebuilt by
        ``load(version)``, their tests resumed where they stood; a decision reached but not yet acted on is
        acted on again. ``None`` (no batch published on this champion yet): the previous champion from the
        alias history, its test from the start, as :meth:`start` would have made it."""
        if records is None:
            replaced = promotion.replaced_champion(self.config, state.base_version)
            if replaced is None:
                return
            previous, decision = replaced
            records = [{"role": PREVIOUS, "version": previous, "champion": state.base_version, "test": None,
                        "tested": self.auto_rollback and decision != "rollback"}]
        for record in records:
            if record.get("role") not in _MODE or record.get("champion") != state.base_version:
                continue
            rollout = Rollout.from_config(self.config, record["role"], load(int(record["version"])),
                                          int(record["version"]), state.base_version,
                                          tested=bool(record.get("tested")), state=record.get("test"))
            self.beside[rollout.role] = rollout
            if rollout.test is not None and rollout.test.decision in ("rollback", "promote"):
                self._act(rollout)

    def observe(self, state, parsed: Any, champion_scores: dict | None = None) -> list[str]:
        """One micro-batch into the versions beside the champion (before the champion learns it); the
        decisions reached. ``scores``: their per-event losses as ``{"live v<N>": ...}``; ``payloads``: UPs."""
        decisions = []
        self.scores, self.payloads = {}, {}
        for rollout in list(self.beside.values()):
            if rollout.own_version == state.base_version or rollout.other_version != state.base_version:
                continue   # beside another champion than the one now live (a rebase is on its way)
            decision = rollout.observe(parsed, state.live, champion_scores)
            self.scores[prequential.beside(rollout.own_version)] = rollout.last_scores
            self.payloads[rollout.own_version] = rollout.last_payloads
            if decision is None:
                continue
            self.decided.append(rollout)
            decisions.append(decision)
            if decision in ("rollback", "promote"):
                self._act(rollout)
            else:
                log.info("speed layer: %s test of version %s ended with %s after %d events; it goes on learning",
                         rollout.test.state["mode"], rollout.own_version, decision, rollout.test.state["events"])
        return decisions

    def records(self) -> list[dict]:
        return [rollout.record() for rollout in self.beside.values()]

    def _act(self, rollout: Rollout) -> None:
        # in a thread of its own: the MODEL notice it publishes makes the layer rebase, under the lock
        threading.Thread(target=self._move, args=(rollout,), name=f"speed-{rollout.test.decision}",
                         daemon=True).start()

    def _move(self, rollout: Rollout) -> None:
        record = rollout.test.decision_record()
        decision = rollout.test.decision
        cause = promotion.CAUSE_AUTO_ROLLBACK if decision == "rollback" else promotion.CAUSE_AUTO_PROMOTE
        try:
            if registry.get_alias_version(self.config, registry.CHAMPION) != rollout.other_version:
                return   # moved already (a restart re-acting on a decision, or an operator)
            promotion.move_alias(self.config, registry.CHAMPION, rollout.target_version, cause, rollout.reason(),
                                 decision=decision, params=record["params"], metrics=record["metrics"],
                                 artifacts={"sequential_test.json": json.loads(rollout.test.to_json())})
        except Exception:  # the champion serves on; the operator can still move it by hand
            log.exception("speed layer: the automatic %s to version %s failed", decision, rollout.target_version)
