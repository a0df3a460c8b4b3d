"""A drift detector per tree, fed once per micro-batch with each tree's prequential loss, vectorised over trees.

An ADWIN-style cut test on sufficient statistics: for each tree it keeps (rows, Σ loss, Σ loss²) of
the last ``batches`` micro-batches; for every cut between two batches, Welch's z of the newer part's
mean loss minus the older part's; Bonferroni over the cuts, so a *warning* is ``max z > Φ⁻¹(1 −
warning_delta / cuts)`` and a *drift* the same with ``drift_delta``. Only increases of at least
``min_effect`` (relative) count. It also says where the change is (how many of the newest batches
lie after the best cut), so a replacement tree is grown on post-change rows only.

Measured in the prototype of this rule: River's ADWIN fed one loss rate per tree per micro-batch
never fired in 50 batches (its bound needs dozens of values), and per-row River detectors for 100
trees would be 200,000 Python calls per 1,000-row batch; this test uses the real sample sizes and is
100 × 32 numpy cells per batch.

>>> detector = WindowDetector(trees=2)
>>> rng = np.random.default_rng(0)
>>> for batch in range(6):
...     loss = (rng.random((1000, 2)) < [0.1, 0.1 if batch < 4 else 0.4]).astype(float)
...     warning, drift, after = detector.update(loss)
>>> drift.tolist(), int(after[1])
([False, True], 2)
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtri

STATE_FIELDS = ("rows", "sums", "squares", "length")


class WindowDetector:
    """Per-tree windows of per-batch loss statistics; :meth:`update` once per micro-batch."""

    def __init__(self, trees: int, warning_delta: float = 1e-2, drift_delta: float = 1e-4,
                 min_effect: float = 0.1, batches: int = 32):
        self.trees = trees
        self.warning_delta = warning_delta
        self.drift_delta = drift_delta
        self.min_effect = min_effect
        self.batches = batches
        self.rows = np.zeros((trees, batches))
        self.sums = np.zeros((trees, batches))
        self.squares = np.zeros((trees, batches))
        self.length = np.zeros(trees, np.int64)

    def reset(self, tree: int) -> None:
        """Forget tree ``tree``'s history (it was replaced)."""
        self.rows[tree] = self.sums[tree] = self.squares[tree] = 0.0
        self.length[tree] = 0

    def update(self, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``loss``: rows × trees. (warning, drift, newest batches after the best cut), one per tree."""
        for window in (self.rows, self.sums, self.squares):
            window[:, :-1] = window[:, 1:]
        self.rows[:, -1] = len(loss)
        self.sums[:, -1] = loss.sum(axis=0)
        self.squares[:, -1] = np.einsum("ij,ij->j", loss, loss)
        self.length = np.minimum(self.length + 1, self.batches)
        # the newer part is the newest j batches (j = 1 .. batches - 1), the older part the rest
        newer = [np.cumsum(w[:, ::-1], axis=1)[:, :-1] for w in (self.rows, self.sums, self.squares)]
        older = [w.sum(axis=1, keepdims=True) - n for w, n in zip((self.rows, self.sums, self.squares), newer)]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_new, mean_old = newer[1] / newer[0], older[1] / older[0]
            var_new = np.maximum(newer[2] / newer[0] - mean_new ** 2, 0.0)
            var_old = np.maximum(older[2] / older[0] - mean_old ** 2, 0.0)
            z = (mean_new - mean_old) / np.sqrt(var_new / newer[0] + var_old / older[0] + 1e-12)
        counts = (older[0] > 0) & (newer[0] > 0) & (mean_new > mean_old * (1.0 + self.min_effect)) \
            & (mean_new - mean_old > 1e-9)
        z = np.where(counts, z, -np.inf)
        best = np.argmax(z, axis=1)
        top = z[np.arange(self.trees), best]
        cuts = np.maximum(self.length - 1, 1)
        warning = top > -ndtri(self.warning_delta / cuts)
        drift = top > -ndtri(self.drift_delta / cuts)
        return warning, drift, best + 1

    def state(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name).copy() for name in STATE_FIELDS}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        if state["rows"].shape != self.rows.shape:
            return  # saved for another forest size or window: start afresh
        for name in STATE_FIELDS:
            setattr(self, name, np.array(state[name]))


__all__ = ["WindowDetector"]
