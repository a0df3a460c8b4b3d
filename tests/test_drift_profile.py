"""Drift profiles and detectors: the issue's must-show alarm rates and power (fixed seeds), ALS included."""
from __future__ import annotations

import json

import numpy as np
import pytest

from headwater import drift_detector as dd
from headwater import drift_profile as dp
from headwater.apps.als import drift as als_drift
from tests.drift_data import CATEGORICAL, NUMERIC, AlsStream, tabular

REFERENCE_ROWS = 100_000      # the training rows the profile is computed from (or a sample of them)


@pytest.fixture(scope="module")
def detector():
    profile = dp.build_profile(tabular(np.random.default_rng(1), REFERENCE_ROWS), categorical=CATEGORICAL)
    return dd.DriftDetector(json.loads(json.dumps(profile)), alpha=0.01)   # as stored, as loaded


def alarm_rate(detector, n, windows, seed, shift_sd=0.0):
    rng = np.random.default_rng(seed)
    return float(np.mean([detector.check(tabular(rng, n, shift_sd)).alarm for _ in range(windows)]))


# --- MUST SHOW: the no-drift alarm rate is 1 +- 1 % at 100, 1,000 and 10,000 rows ------------------

@pytest.mark.parametrize("n,windows", [(100, 3000), (1_000, 2000), (10_000, 600)])
def test_no_drift_alarm_rate_is_one_percent(detector, n, windows):
    rate = alarm_rate(detector, n, windows, seed=n)
    assert 0.0 <= rate <= 0.02, f"alarm rate {rate:.2%} over {windows} windows of {n} rows"


# --- MUST SHOW: a 0.25 sd mean shift of one numeric feature, power >= 0.9 at 10,000 rows -----------

def test_quarter_sd_shift_found_with_power_at_least_0_9_at_10000_rows(detector):
    rng = np.random.default_rng(77)
    reports = [detector.check(tabular(rng, 10_000, shift_sd=0.25)) for _ in range(100)]
    assert np.mean([r.alarm for r in reports]) >= 0.9
    assert all(r.worst == "x_normal" for r in reports if r.alarm)
    shift = np.mean([next(f for f in r.features if f.name == "x_normal").mean_shift_sd for r in reports])
    assert shift == pytest.approx(0.25, abs=0.02)


def test_psi_rule_alarms_on_most_identical_samples_at_small_n():
    """The fixed rule 'PSI > 0.1 on 10 quantile bins' on windows drawn from the training distribution."""
    rng = np.random.default_rng(5)
    ref = rng.standard_normal(REFERENCE_ROWS)
    edges = np.quantile(ref, np.linspace(0.1, 0.9, 9))
    q = np.bincount(np.searchsorted(edges, ref), minlength=10) / ref.size

    def psi(x):
        p = np.bincount(np.searchsorted(edges, x), minlength=10) / x.size
        p = np.maximum(p, 1e-4)   # the usual epsilon for empty bins
        return float(np.sum((p - q) * np.log(p / q)))

    one_feature = np.mean([psi(rng.standard_normal(100)) > 0.1 for _ in range(2000)])
    ten_features = np.mean([max(psi(rng.standard_normal(100)) for _ in range(10)) > 0.1 for _ in range(300)])
    assert one_feature > 0.25 and ten_features > 0.9      # measured ~0.31 and ~0.98
    assert np.mean([psi(rng.standard_normal(10_000)) > 0.1 for _ in range(200)]) == 0.0   # fine at large n


# --- behaviour -----------------------------------------------------------------------------------

def test_categorical_shift_new_category_and_missing_values_are_found(detector):
    rng = np.random.default_rng(3)
    w = tabular(rng, 2_000)
    w["c_five"] = rng.choice(["a", "b", "c", "d", "e"], 2_000, p=[0.3, 0.35, 0.2, 0.1, 0.05])
    rep = detector.check(w)
    assert rep.alarm and rep.worst == "c_five"
    w = tabular(rng, 2_000)
    w["c_zipf"] = np.where(rng.uniform(size=2_000) < 0.1, 999, w["c_zipf"])    # a category never seen
    assert detector.check(w).worst == "c_zipf"
    w = tabular(rng, 2_000)
    w["x_lognormal"][rng.uniform(size=2_000) < 0.1] = np.nan                     # a feed starts dropping values
    assert detector.check(w).worst == "x_lognormal"


def test_missing_column_counts_as_missing_values(detector):
    w = tabular(np.random.default_rng(4), 1_000)
    del w["x_bimodal"]
    rep = detector.check(w)
    assert rep.alarm and rep.worst == "x_bimodal"


def test_report_outputs(detector):
    rep = detector.check(tabular(np.random.default_rng(6), 1_000, shift_sd=0.5))
    scores = rep.scores()
    assert set(scores) == set(NUMERIC) | set(CATEGORICAL)
    assert scores["x_normal"] > -np.log10(0.01)
    text = rep.prometheus({"app": "forest", "version": "3"})
    assert 'headwater_drift_score{app="forest",version="3",feature="x_normal"}' in text
    assert "headwater_drift_alarm" in text
    metrics = rep.mlflow_metrics()
    assert metrics["drift.alarm"] == 1.0 and "drift.score.x_normal" in metrics
    assert rep.console().splitlines()[1].split()[0] == "x_normal"
    json.dumps(rep.to_dict())


def test_profile_is_small_json_and_holds_quantiles():
    profile = dp.build_profile(tabular(np.random.default_rng(2), 20_000), categorical=CATEGORICAL)
    text = json.dumps(profile)
    assert len(text) < 40_000
    feat = {f["name"]: f for f in profile["features"]}
    assert feat["x_normal"]["quantiles"]["0.5"] == pytest.approx(40, abs=0.5)
    assert sum(feat["x_poisson"]["counts"]) == 20_000 and len(feat["x_poisson"]["edges"]) < 15   # ties merged
    assert feat["c_high"]["distinct"] > 100 and len(feat["c_high"]["categories"]) == 100
    assert feat["x_uniform_missing"]["missing"] == pytest.approx(1_000, rel=0.15)


def test_holm():
    np.testing.assert_allclose(dd.holm([0.01, 0.04, 0.03, 0.5]), [0.04, 0.09, 0.09, 0.5])


def test_two_sample_statistic_matches_scipy_contingency():
    from scipy.stats import chi2_contingency
    ref, win = np.array([500, 300, 200]), np.array([40, 35, 25])
    x2, dof = dd.chi2_homogeneity(ref, win)
    expected = chi2_contingency(np.vstack([ref, win]), correction=False)
    assert x2 == pytest.approx(expected.statistic) and dof == expected.dof


def test_small_reference_stays_calibrated_with_the_two_sample_test():
    """Reference of 2,000 rows, windows of 2,000: a one-sample test against the stored shares would alarm
    far too often; the two-sample test does not."""
    rng = np.random.default_rng(8)
    profile = dp.build_profile({"x": rng.standard_normal(2_000)})
    det = dd.DriftDetector(profile, alpha=0.01)
    rate = np.mean([det.check({"x": rng.standard_normal(2_000)}).alarm for _ in range(1500)])
    assert rate <= 0.02


# --- ALS -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def als():
    stream = AlsStream(np.random.default_rng(3))
    tu, ti, tr = stream.take(90_000)            # the training part of the time-based split
    hu, hi, _ = stream.take(10_000)             # the held-out part (later in time)
    profile = json.loads(json.dumps(als_drift.build_als_profile(tu, ti, tr, hu, hi)))
    known_u = set(map(str, np.concatenate([tu, hu])))
    known_i = set(map(str, np.concatenate([ti, hi])))
    return stream, als_drift.ALSDriftDetector(profile, alpha=0.01), known_u, known_i


@pytest.mark.parametrize("n,windows", [(100, 1500), (1_000, 800), (10_000, 100)])
def test_als_no_drift_alarm_rate(als, n, windows):
    stream, det, known_u, known_i = als
    alarms = 0
    for _ in range(windows):
        u, i, r = stream.take(n)
        alarms += det.check(u, i, r, known_u, known_i).alarm
        known_u.update(map(str, u))    # the speed layer folds every user and item in
        known_i.update(map(str, i))
    assert alarms / windows <= 0.02


def test_als_drifts_are_found(als):
    stream, det, known_u, known_i = als
    rng = np.random.default_rng(12)
    # a campaign brings three times the usual share of new users
    campaign = AlsStream(rng, new_user=0.15)
    campaign.next_user = 10**9
    u, i, r = campaign.take(5_000)
    rep = det.check(u, i, r, known_u, known_i)
    assert rep.alarm and rep.worst == "new_user"
    # ratings half a star more generous (a UI change)
    shifted = AlsStream(np.random.default_rng(3), rating_shift=0.5)
    u, i, r = shifted.take(5_000)
    rep = det.check(u, i, r, known_u, known_i)
    assert rep.alarm and rep.worst == "strength"
    assert dict((f.name, f.deff) for f in rep.features)["strength"] > 1.0   # clustering by user is seen


def test_rate_test_is_exact():
    # equal rates (1 %): p = P(Binomial(110, 1/11) >= 10), about one half
    assert als_drift.ALSDriftDetector.rate_test(10, 1000, 100, 10_000) == pytest.approx(0.5, abs=0.1)
    assert als_drift.ALSDriftDetector.rate_test(30, 1000, 100, 10_000) < 1e-4      # 3 % against 1 %
    assert als_drift.ALSDriftDetector.rate_test(0, 1000, 0, 10_000) == 1.0
