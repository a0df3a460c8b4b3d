"""The Spark profiles (what the batch layer stores) equal the numpy ones on the same rows."""
from __future__ import annotations

import numpy as np
import pytest

from headwater import drift_detector as dd
from headwater import drift_profile as dp
from headwater.apps.als import drift as als_drift
from tests.drift_data import CATEGORICAL, NUMERIC, AlsStream, tabular


def test_spark_profile_equals_numpy_profile_on_the_same_edges(spark):
    import pandas as pd
    data = tabular(np.random.default_rng(0), 20_000)
    data["c_five"][:50] = ""                      # some missing categorical values
    frame = pd.DataFrame({k: (v.astype(str) if k in CATEGORICAL else v) for k, v in data.items()})
    df = spark.createDataFrame(frame)
    sp = dp.profile_from_spark(df, NUMERIC, CATEGORICAL)
    assert sp["rows"] == 20_000
    np_profile = dp.build_profile(data, categorical=CATEGORICAL)
    by_name = {f["name"]: f for f in np_profile["features"]}
    for feat in sp["features"]:
        ref = by_name[feat["name"]]
        if feat["type"] == "numeric":
            same_edges = dp.numeric_feature(feat["name"], data[feat["name"]], 50, edges=feat["edges"])
            assert feat["counts"] == same_edges["counts"], feat["name"]
            assert feat["missing"] == ref["missing"]
            assert feat["mean"] == pytest.approx(ref["mean"], rel=1e-9)
            # approximate quantiles: the fine bins still hold about 2 % each
            shares = np.asarray(feat["counts"]) / sum(feat["counts"])
            if feat["name"] != "x_poisson":
                assert shares.max() < 0.03
        else:
            assert feat["categories"] == ref["categories"]
            assert feat["counts"] == ref["counts"] and feat["other"] == ref["other"]
            assert feat["missing"] == ref["missing"] and feat["distinct"] == ref["distinct"]
    # the detector reads either profile alike
    window = tabular(np.random.default_rng(1), 5_000, shift_sd=0.25)
    a = dd.DriftDetector(sp).check(window)
    b = dd.DriftDetector(np_profile).check(window)
    assert a.alarm and b.alarm and a.worst == b.worst == "x_normal"


def test_als_profile_from_spark_matches_numpy(spark):
    import pandas as pd
    stream = AlsStream(np.random.default_rng(3))
    tu, ti, tr = stream.take(20_000)
    hu, hi, hr = stream.take(3_000)
    train = spark.createDataFrame(pd.DataFrame({"user": tu.astype(str), "item": ti.astype(str), "strength": tr}))
    hold = spark.createDataFrame(pd.DataFrame({"user": hu.astype(str), "item": hi.astype(str), "strength": hr}))
    sp = als_drift.als_profile_from_spark(train, hold)
    npp = als_drift.build_als_profile(tu, ti, tr, hu, hi)
    assert sp["new_user"] == npp["new_user"] and sp["new_item"] == npp["new_item"]
    assert sp["rows"] == npp["rows"] == 20_000
    assert sum(sp["features"][0]["counts"]) == 20_000
    assert sp["features"][0]["edges"] == npp["features"][0]["edges"]     # discrete ratings: exact quantiles
