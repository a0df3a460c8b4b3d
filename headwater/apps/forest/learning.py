"""The forest's speed-layer rule: leaves that forget, trees replaced after a drift.

Each labelled micro-batch is routed to its leaf in every tree (one vectorised walk); if tree
replacement is on, the per-tree losses of the batch *before* learning feed the drift detectors
(:mod:`.replacement`), which may swap in trees grown on recent rows; then every other tree's touched
leaves are aged to the batch's time and get the batch's rows, weighted by age (:mod:`.decay`). The UP
messages are the replaced trees first, then the changed leaves (:mod:`.updates`), all absolute.

Defaults, measured on drifting streams (SEA, Agrawal abrupt and gradual, a rotating hyperplane,
NOAA weather) and on shuffled (stationary) ones: a half-life of 2,000 points (2 micro-batches of
1,000 rows: h = 1 cost 0.4 points on the stationary NOAA stream, h ≥ 4 lost 0.7–1.8 on the
hyperplane; points rather than batches so that forgetting follows the data, not how many events a
trigger happened to collect) and tree replacement on.

>>> import pyarrow as pa
>>> from headwater.apps.forest.arrays import ForestArrays
>>> from headwater.apps.forest.encoding import CategoricalEncoding
>>> forest = ForestArrays.from_nodes("regression", 1, [[dict(
...     id=0, feature=-1, threshold=0.0, categories=None, left=-1, right=-1, stats=[1, 10, 100])]])
>>> learner = ForestLearner(ForestModel(forest, CategoricalEncoding(["x"], {}, target="y")), Decay(0.5, "batches"))
>>> [encode(u)[3] for u in learner.learn(pa.table({"x": [3.0], "y": [20.0]}))]  # doctest: +ELLIPSIS
[[[0, '...', [0], [[1.5, 25.0, 450.0]]]]]
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa

from headwater.apps.forest.arrays import Walk
from headwater.apps.forest.decay import Decay, fold_rows
from headwater.apps.forest.model import ForestModel
from headwater.apps.forest.replacement import ReplacementSettings, TreeReplacement
from headwater.apps.forest.updates import LeafUpdate, TreeUpdate, encode  # noqa: F401 (encode: doctest)

log = logging.getLogger(__name__)

DRIFT_DIRECTORY = "drift"
NO_DECAY = Decay()


class _LatestWalk:
    """The latest walk of any learner in this process, one reference (threads read it whole)."""

    walk: Walk | None = None


_latest = _LatestWalk()


class ForestLearner:
    """A :class:`~headwater.apps.forest.model.ForestModel` that learns labelled rows with ``decay`` and,
    with ``replacement`` settings, replaces trees after a drift. ``time_feature`` names the column of
    each row's event time (decay unit ``event-time``)."""

    def __init__(self, model: ForestModel, decay: Decay = NO_DECAY, replacement: ReplacementSettings | None = None,
                 time_feature: str | None = None):
        self.model = model
        self.decay = decay
        self.settings = replacement
        self.time_feature = time_feature
        forest = model.forest
        self.replacement = None if replacement is None else TreeReplacement(
            replacement, forest.task, forest.num_trees, forest.num_features, forest.num_classes,
            model.encoding.categorical_predictors, decay)
        # the speed layer scores a batch, then learns the same batch: the walk and the leaves' statistics
        # are gathered once (the drift detectors score each tree with the statistics the forest scored with)
        self._scored: tuple | None = None

    @property
    def forest(self):
        return self.model.forest

    def learn(self, rows: pa.Table) -> list[LeafUpdate | TreeUpdate]:
        """Fold labelled rows in; the UP messages (replaced trees, then changed leaves)."""
        X, y, known, leaves, leaf_stats = self._routed(rows)
        if not known.all():
            log.info("skipped %d of %d rows with an unknown category or target", int((~known).sum()), len(known))
        if not len(y):
            return []
        forest = self.forest
        times = None
        if self.decay.unit == "event-time":
            times = rows.column(self.time_feature).cast(pa.float64()).to_numpy(zero_copy_only=False)[known]
            if forest.clock == 0.0 and not forest.asof.any():   # a batch model: its leaves count from now on
                forest.asof[:] = forest.clock = float(times.min())
        now, row_times = self.decay.clock(forest.clock, len(y), times)
        swapped = {} if self.replacement is None else self.replacement.step(forest, leaves, X, y, row_times, now,
                                                                                 leaf_stats)
        old_sids = {t: forest.tree_sids[t] for t in swapped}
        if swapped:
            walked = Walk(forest, X, leaves)
            forest = forest.with_trees(swapped)
            keep = np.setdiff1d(np.arange(forest.num_trees), list(swapped))
            leaves = forest.leaves_sharing(X, walked)[:, keep]
        weights = self.decay.weights(now, row_times)
        touched = fold_rows(forest, leaves, y, weights, now, self.decay)
        forest.clock = now
        if self.replacement is not None:
            self.replacement.fold_candidates(forest, X, y, weights, now)
        self.model.forest = forest      # one rebind: a reader sees the old or the new trees
        return [*(forest.tree_update(t, old_sids[t]) for t in sorted(swapped)), *forest.leaf_update(touched)]

    def losses(self, rows: pa.Table) -> np.ndarray:
        """Per-row loss of the forest as it is: 0/1 error or squared error; NaN for a row it cannot route."""
        X, y, known, leaves, _ = self._routed(rows)
        leaf_stats = self.forest.leaf_stats(leaves)
        self._scored = (rows, self.forest, X, y, known, leaves, leaf_stats)
        loss = np.full(len(known), np.nan)
        if len(y):
            predicted = self.forest.predict(X, leaves, leaf_stats)
            loss[known] = (predicted != y).astype(np.float64) if self.forest.task == "classification" \
                else (predicted - y) ** 2
        return loss

    def _routed(self, rows: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """(X, y, known, leaves, the leaves' statistics or None) of the rows the forest can route; reused when
        these rows were just scored (statistics included), and the walk shared with the latest one of any
        learner in this process (the live model's, when this is the champion alone) for the trees the two
        forests have in common."""
        scored, self._scored = self._scored, None
        if scored is not None and scored[0] is rows and scored[1] is self.forest:
            return scored[2:]
        X, y, known = self.model.encoding.known_rows(rows)
        leaves = self.forest.leaves_sharing(X, _latest.walk)
        _latest.walk = Walk(self.forest, X, leaves)
        return X, y, known, leaves, None

    def apply_update(self, update: LeafUpdate | TreeUpdate) -> bool:
        """Apply an UP (from the topic); a tree replaced by it forgets its drift history here."""
        before, self._scored = list(self.forest.tree_sids), None   # the scored statistics may change
        applied = self.model.apply_update(update)
        if self.replacement is not None and isinstance(update, TreeUpdate) and before != self.forest.tree_sids:
            self.replacement.forget(update.tree)
        return applied

    def copy(self) -> ForestLearner:
        """An independent copy (the snapshot thread saves it while learning goes on)."""
        other = ForestLearner(self.model.copy(), self.decay, self.settings, self.time_feature)
        if self.replacement is not None:
            import copy

            other.replacement = copy.deepcopy(self.replacement)
        return other

    def save(self, directory: str | Path) -> None:
        """The model (what every layer loads) plus the drift state a restarted speed layer resumes with."""
        self.model.save(directory)
        if self.replacement is not None:
            self.replacement.save(Path(directory) / DRIFT_DIRECTORY)

    @classmethod
    def load(cls, directory: str | Path, decay: Decay = NO_DECAY, replacement: ReplacementSettings | None = None,
             time_feature: str | None = None) -> ForestLearner:
        learner = cls(ForestModel.load(directory), decay, replacement, time_feature)
        if learner.replacement is not None and learner.replacement.restore(Path(directory) / DRIFT_DIRECTORY):
            log.info("restored the drift detectors and %d recent rows from %s",
                     len(learner.replacement.window_y), directory)
        return learner


__all__ = ["ForestLearner"]
