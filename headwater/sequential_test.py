"""Always-valid one-sided sequential test on paired per-event loss differences (rollback / promotion).

The speed layer scores every live event with two model versions before learning from it, so each event
gives a paired difference ``d_t = loss_new(t) - loss_old(t)`` (squared error, 0/1 error, 1 - hit@10,
distance to the nearest centre, ...).  :class:`SequentialTest` decides, as early as the evidence allows,
whether the new version is worse (``mode="rollback"``), better (``mode="promote"``) or not worse than
a margin (``mode="not_worse"``), with a false-decision probability bounded by ``alpha`` *over an
unlimited number of looks* (the test may be checked after every micro-batch forever).

Method (chosen over CUSUM, a plug-in-variance mSPRT and a betting e-process by simulation: the
study and its figures are in the issue-16 notes; the must-show cases are ``tests/test_sequential_test.py``):

1. **Blocks.** Differences are cut into consecutive blocks of ``block_size`` events (default 100); the
   test sees one observation per block, the block mean ``Y_k``.  Blocking is how the test handles
   autocorrelation (user sessions, both models' speed updates) and heavy tails: block means of 100
   events are close to Gaussian and nearly uncorrelated even when the events are not, and their spread
   -- the quantity the test needs -- is estimated *from the block means themselves*, so within-block
   correlation is inside the variance estimate instead of being ignored.
2. **Scale-invariant mixture SPRT (a sequential t-test).**  With ``Z_k = s (Y_k - c)`` (``s`` = +1 to
   detect "worse", -1 for "better"; ``c`` the margin) the statistic is the Bayes factor of
   ``H1: Z ~ N(delta*sigma, sigma^2), delta > 0`` against ``H0: delta = 0``, with a half-normal prior
   ``delta ~ N+(0, g)`` on the standardised effect and the right-Haar prior ``d sigma / sigma`` on the
   unknown scale.  It has the closed form (``n`` blocks, ``m`` their mean, ``M2`` the sum of squared
   deviations, ``A = M2 + n m^2``, ``C = M2 + n m^2/(1 + n g)``)::

       E_n = 2 (1 + n g)^(-1/2) (A / C)^(n/2) F_{t, n}( n^(3/2) m / sqrt((n + 1/g) C) )

   Derivation: for fixed ``delta`` and ``u = 1/sigma`` the likelihood ratio is
   ``exp(delta S u - n delta^2 / 2)`` (``S = sum Z``); integrating ``delta`` against the half-normal prior
   gives ``2 (1 + n g)^(-1/2) exp(S^2 u^2 g / (2 (1 + n g))) Phi(S u / sqrt(n + 1/g))``; integrating
   ``u^(n-1)`` against ``exp(-A u^2 / 2)`` turns the exponential part into ``(A/C)^(n/2)`` and the ``Phi``
   part into ``F_{t,n}`` (``U`` is then ``chi_n / sqrt(C)``). The unit tests check the closed form against
   2-D quadrature and ``E[E_n] = 1`` under H0.
   (``F_{t,n}`` the Student-t CDF with ``n`` degrees of freedom; the two-sided
   version without the factor ``2 F`` is the Jeffreys/Rouder Bayes factor with a normal effect prior.)
   Under ``H0`` this is a non-negative martingale with mean 1 in the filtration of the scale-invariant
   data (Bayes factors with a right-Haar prior on a group-invariant nuisance are test martingales:
   Grunwald, de Heide & Koolen, "Safe testing"; Perez-Ortiz et al., "E-statistics, group invariance and
   anytime-valid testing"), so by Ville's inequality ``P(sup_n E_n >= 1/alpha) <= alpha``: the
   threshold is ``1/alpha``, fixed, the same for every loss and every scale, and valid from the second
   block on (no warm-up, no plug-in variance).  It is exact for i.i.d. Gaussian block means and
   approximate (measured) for block means of real losses.
3. **Vectorised state.**  The state is a few numbers (events, loss sums, the open block's sum and
   count, the blocks' count/mean/M2, the current and maximum log E); a whole micro-batch is folded in
   with cumulative sums, and the statistic is evaluated at *every* block boundary inside the batch, so
   the event at which the threshold was crossed is exact to a block.  The state is JSON.

``prior_scale`` is the prior standard deviation of the *per-event* standardised effect
(``mean(d)/sd(d)``); the block-level prior variance is ``g = prior_scale**2 * block_size`` so a change
of block size does not change which effects the test is tuned to.  The default 0.1 puts the test's
best power around per-event effects of 0.05-0.3 sd (a 0.02 accuracy drop to a 0.2 drop).

Example (a new version whose RMSE is 1.3 against the old one's 0.95):

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> test = SequentialTest(mode="rollback", alpha=0.01, versions={"new": "7", "old": "6"})
>>> for _ in range(20):                         # micro-batches of 100 live events
...     err_old = rng.normal(0, 0.95, 100)
...     err_new = 0.7 * err_old / 0.95 * 1.3 + rng.normal(0, 1.3 * np.sqrt(1 - 0.7**2), 100)
...     decision = test.update(err_new ** 2, err_old ** 2)
...     if decision:
...         break
>>> decision, test.state["decided_at_event"] <= 2000
('rollback', True)
>>> record = test.decision_record()
>>> record["tags"], record["metrics"]["threshold_e_value"]
({'headwater.decision': 'rollback'}, 100.0)
>>> restored = SequentialTest.from_json(test.to_json())
>>> restored.state == test.state
True
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from scipy import special

FORMAT = "headwater.sequential-test/1"
MODES = {
    # mode: (sign applied to d - margin direction, sign of the margin, decision when H0 is rejected)
    "rollback": (+1.0, +1.0, "rollback"),   # H0: E d <= +margin      H1: new worse by more than margin
    "promote": (-1.0, -1.0, "promote"),     # H0: E d >= -margin      H1: new better by more than margin
    "not_worse": (-1.0, +1.0, "promote"),   # H0: E d >= +margin      H1: new worse by less than margin
}


def log_e_value(n: np.ndarray, mean: np.ndarray, m2: np.ndarray, g: float) -> np.ndarray:
    """log of the one-sided scale-invariant mixture Bayes factor after ``n`` observations.

    ``mean`` and ``m2`` (sum of squared deviations from the mean) summarise the observations ``Z``;
    the alternative is ``E Z > 0``.  Vectorised over arrays of equal shape.  ``n < 2`` or an all-zero
    sample gives 0 (no evidence yet).
    """
    n = np.asarray(n, dtype=float)
    mean = np.asarray(mean, dtype=float)
    m2 = np.maximum(np.asarray(m2, dtype=float), 0.0)
    nm2 = n * mean * mean
    a = m2 + nm2
    c = m2 + nm2 / (1.0 + n * g)
    with np.errstate(divide="ignore", invalid="ignore"):
        arg = n * np.sqrt(n) * mean / np.sqrt((n + 1.0 / g) * c)
        log_cdf = np.log(special.stdtr(n, arg))
        # far in the left tail stdtr underflows to 0; its log is then -inf, which is the right limit
        out = (math.log(2.0) - 0.5 * np.log1p(n * g) + 0.5 * n * (np.log(a) - np.log(c)) + log_cdf)
    degenerate = (n < 2) | (a <= 0) | ~np.isfinite(a)
    return np.where(degenerate, 0.0, np.where(np.isnan(out), -np.inf, out))


class SequentialTest:
    """One always-valid sequential comparison of two versions on paired per-event losses.

    Parameters
    ----------
    mode: ``"rollback"`` (decide ``rollback`` when new is worse than old by more than ``margin``),
        ``"promote"`` (decide ``promote`` when new -- the challenger -- is better by more than
        ``margin``) or ``"not_worse"`` (``promote`` when new is worse by less than ``margin``:
        non-inferiority; needs ``margin > 0``).
    alpha: bound on the probability of a wrong decision over the whole (unbounded) stream.
    block_size: events per block (see the module docstring).
    margin: in loss units, per event (e.g. 0.01 for "one percentage point of accuracy").
    prior_scale: prior sd of the per-event standardised effect (tuning; does not affect validity).
    max_events: optional horizon; when reached without a decision the test ends with ``"keep"``
        (rollback mode: the new version stays) or ``"reject"`` (promotion modes: no promotion).
    clip: optional upper bound applied to each per-event loss before differencing (for unbounded,
        very heavy-tailed losses; the test is then about the clipped loss).
    versions: free-form labels recorded with the decision, e.g. ``{"new": "7", "old": "6"}``.
    """

    def __init__(self, mode: str = "rollback", alpha: float = 0.01, block_size: int = 100,
                 margin: float = 0.0, prior_scale: float = 0.1, max_events: int | None = None,
                 clip: float | None = None, versions: dict[str, str] | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}, not {mode!r}")
        if not 0 < alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if block_size < 1:
            raise ValueError("block_size must be >= 1")
        if prior_scale <= 0:
            raise ValueError("prior_scale must be > 0")
        if margin < 0:
            raise ValueError("margin must be >= 0 (its direction follows the mode)")
        if mode == "not_worse" and margin == 0:
            raise ValueError("not_worse needs a margin > 0 (with 0 it is the 'promote' test)")
        self.state: dict[str, Any] = {
            "format": FORMAT, "mode": mode, "alpha": alpha, "block_size": int(block_size),
            "margin": float(margin), "prior_scale": float(prior_scale),
            "max_events": None if max_events is None else int(max_events),
            "clip": None if clip is None else float(clip), "versions": dict(versions or {}),
            "events": 0, "loss_new_sum": 0.0, "loss_old_sum": 0.0,
            "open_count": 0, "open_sum": 0.0,
            "blocks": 0, "block_mean": 0.0, "block_m2": 0.0,
            "log_e": 0.0, "max_log_e": 0.0,
            "decision": None, "decided_at_event": None,
        }

    # --- serialisation ---------------------------------------------------------------------------

    def to_json(self) -> str:
        """The whole state as a JSON string (a few hundred bytes)."""
        return json.dumps(self.state, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | dict) -> SequentialTest:
        state = json.loads(text) if isinstance(text, str) else dict(text)
        if state.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} state: format={state.get('format')!r}")
        test = cls(mode=state["mode"], alpha=state["alpha"], block_size=state["block_size"],
                   margin=state["margin"], prior_scale=state["prior_scale"],
                   max_events=state["max_events"], clip=state["clip"], versions=state["versions"])
        test.state.update(state)
        return test

    # --- derived quantities ----------------------------------------------------------------------

    @property
    def threshold_log_e(self) -> float:
        return -math.log(self.state["alpha"])

    @property
    def g(self) -> float:
        return self.state["prior_scale"] ** 2 * self.state["block_size"]

    @property
    def decision(self) -> str | None:
        return self.state["decision"]

    def p_value(self) -> float:
        """Always-valid p-value: ``min(1, 1 / max_n E_n)``."""
        return float(min(1.0, math.exp(-self.state["max_log_e"])))

    # --- the update ------------------------------------------------------------------------------

    def update(self, loss_new, loss_old) -> str | None:
        """Fold a micro-batch of paired losses (equal-length arrays, event order) into the test.

        Events where either loss is NaN are ignored.  Returns the decision (``"rollback"``,
        ``"promote"``, ``"keep"``, ``"reject"``) once one is reached, else ``None``; a decision is
        final (later batches still count events and losses, for the record, but do not change it).
        """
        st = self.state
        new = np.asarray(loss_new, dtype=float).ravel()
        old = np.asarray(loss_old, dtype=float).ravel()
        if new.shape != old.shape:
            raise ValueError(f"loss arrays differ in length: {new.shape} vs {old.shape}")
        ok = ~(np.isnan(new) | np.isnan(old))
        if not ok.all():
            new, old = new[ok], old[ok]
        if st["clip"] is not None:
            new, old = np.minimum(new, st["clip"]), np.minimum(old, st["clip"])
        if new.size == 0:
            return st["decision"]
        events_before = st["events"]
        st["events"] += int(new.size)
        st["loss_new_sum"] += float(new.sum())
        st["loss_old_sum"] += float(old.sum())
        if st["decision"] is not None:
            return st["decision"]

        sign, margin_sign, _ = MODES[st["mode"]]
        z = sign * (new - old - margin_sign * st["margin"])
        bsize = st["block_size"]
        # complete blocks: the open block's remainder first, then whole blocks of this batch
        need = bsize - st["open_count"]
        if z.size < need:
            st["open_count"] += int(z.size)
            st["open_sum"] += float(z.sum())
            return self._check_horizon()
        head = st["open_sum"] + float(z[:need].sum())
        rest = z[need:]
        whole = rest.size // bsize
        block_means = np.empty(1 + whole)
        block_means[0] = head / bsize
        if whole:
            block_means[1:] = rest[: whole * bsize].reshape(whole, bsize).mean(axis=1)
        tail = rest[whole * bsize:]
        st["open_count"] = int(tail.size)
        st["open_sum"] = float(tail.sum())
        # events (1-based, over the whole stream) at which each new block closes
        block_end_event = (events_before + need + bsize * np.arange(1 + whole)).astype(np.int64)

        # prefix means / M2 of all blocks so far, shifted by the old mean for stability
        n0, mean0, m20 = st["blocks"], st["block_mean"], st["block_m2"]
        shift = mean0 if n0 else float(block_means[0])
        dev = block_means - shift
        n = n0 + np.arange(1, block_means.size + 1)
        s = n0 * (mean0 - shift) + np.cumsum(dev)
        ss = m20 + n0 * (mean0 - shift) ** 2 + np.cumsum(dev * dev)
        mean = shift + s / n
        m2 = np.maximum(ss - s * s / n, 0.0)
        log_e = log_e_value(n, mean, m2, self.g)

        horizon = st["max_events"]
        # the horizon may fall inside this batch: only blocks that close before it count
        valid = np.ones(block_means.size, bool) if horizon is None else block_end_event <= horizon
        crossed = np.flatnonzero((log_e >= self.threshold_log_e) & valid)
        if crossed.size:
            stop = int(crossed[0])
        else:
            stop = int(np.flatnonzero(valid)[-1]) if valid.any() else -1
        if stop >= 0:
            st["blocks"], st["block_mean"], st["block_m2"] = int(n[stop]), float(mean[stop]), float(m2[stop])
            st["log_e"] = float(log_e[stop])
            st["max_log_e"] = float(max(st["max_log_e"], np.max(log_e[: stop + 1])))
        if crossed.size:
            st["open_count"], st["open_sum"] = 0, 0.0   # the blocks after the decision do not matter
            st["decision"] = MODES[st["mode"]][2]
            st["decided_at_event"] = int(block_end_event[stop])
            return st["decision"]
        return self._check_horizon()

    def _check_horizon(self) -> str | None:
        st = self.state
        if st["decision"] is None and st["max_events"] is not None and st["events"] >= st["max_events"]:
            st["decision"] = "keep" if st["mode"] == "rollback" else "reject"
            st["decided_at_event"] = int(st["max_events"])
        return st["decision"]

    # --- the record ------------------------------------------------------------------------------

    def decision_record(self) -> dict[str, dict[str, Any]]:
        """Params / metrics / tags for the MLflow decision run (``mlflow.log_params`` etc.)."""
        st = self.state
        ev = st["events"]
        n = st["blocks"]
        sd = math.sqrt(st["block_m2"] / (n - 1)) if n >= 2 else float("nan")
        sign, margin_sign, _ = MODES[st["mode"]]
        # block_mean is of Z = sign (d - margin_sign*margin); back to d
        mean_diff_blocks = sign * st["block_mean"] + margin_sign * st["margin"] if n else float("nan")
        params = {"mode": st["mode"], "alpha": st["alpha"], "block_size": st["block_size"],
                  "margin": st["margin"], "prior_scale": st["prior_scale"], "max_events": st["max_events"],
                  "clip": st["clip"], "method": "scale-invariant mixture SPRT on block means"}
        params.update({f"version_{k}": v for k, v in st["versions"].items()})
        metrics = {
            "events_seen": ev,
            "decided_at_event": st["decided_at_event"] if st["decided_at_event"] is not None else float("nan"),
            "mean_loss_new": st["loss_new_sum"] / ev if ev else float("nan"),
            "mean_loss_old": st["loss_old_sum"] / ev if ev else float("nan"),
            "mean_diff_tested": mean_diff_blocks,
            "blocks": n,
            "t_statistic": (st["block_mean"] / (sd / math.sqrt(n))) if n >= 2 and sd > 0 else float("nan"),
            "e_value": math.exp(min(st["log_e"], 700.0)),
            "log10_e_value": st["log_e"] / math.log(10),
            "max_log10_e_value": st["max_log_e"] / math.log(10),
            "threshold_e_value": 1.0 / st["alpha"],
            "log10_threshold": self.threshold_log_e / math.log(10),
            "p_value_always_valid": self.p_value(),
        }
        tags = {"headwater.decision": st["decision"] or "pending"}
        return {"params": params, "metrics": metrics, "tags": tags}
