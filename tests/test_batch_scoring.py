"""`headwater score` on Spark: its answers equal the serving layer's for the same inputs, with the version in
every row; the alias is resolved once, before the job."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from headwater import registry
from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.apps.als.pyfunc import ALSPyfuncModel
from headwater.apps.als.pyfunc import signature as als_signature
from headwater.batch_scoring import ScoringError, resolve_version, score
from headwater.cli import main
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager
from tests.integration.processes import write_conf

INPUTS = 1_000


def als_factors(seed: int) -> ALSFactors:
    rng = np.random.default_rng(seed)
    users, items = [f"u{n}" for n in range(60)], [f"i{n}" for n in range(200)]
    known = {u: {items[(3 * n + k) % 200] for k in range(4)} for n, u in enumerate(users)}
    return ALSFactors(users, rng.normal(size=(60, 5)), items, rng.normal(size=(200, 5)), known,
                      ALSSettings(False, regularization=0.1, bias_regularization=2.0), mu=3.5,
                      user_bias=rng.normal(0, 0.3, 60), item_bias=rng.normal(0, 0.3, 200))


@pytest.fixture
def als_versions(make_config, tmp_path):
    """Two registered ALS versions; the first is the champion."""
    config = make_config()
    versions = []
    for seed in (1, 2):
        als_factors(seed).save(tmp_path / f"v{seed}")
        versions.append(registry.log_and_register(config, tmp_path / f"v{seed}", ALSPyfuncModel(), {"layer": "batch"},
                                                  aliases=[registry.CHAMPION] if seed == 1 else [],
                                                  signature=als_signature()).version)
    return config, versions


def serving_client(config, factors: ALSFactors, version: int):
    manager = ModelManager(model_class=ALSServingModel)
    manager.swap(ALSServingModel(factors, version=version), base_version=version)
    return create_app(config, manager).test_client()


def test_als_estimates_and_recommendations_equal_the_serving_layers(als_versions, spark, tmp_path):
    config, (champion, other) = als_versions
    rng = np.random.default_rng(3)
    pairs = pd.DataFrame({"user": [f"u{n}" for n in rng.integers(0, 70, INPUTS)],     # some unknown users
                          "item": [f"i{n}" for n in rng.integers(0, 210, INPUTS)]})  # and items
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    result = score(config, str(tmp_path / "pairs.csv"), str(tmp_path / "estimates.parquet"))
    assert result.version == champion and result.rows == INPUTS
    scored = pd.read_parquet(tmp_path / "estimates.parquet")
    assert set(scored["model_version"]) == {champion}
    client = serving_client(config, als_factors(1), champion)
    served = [float(client.get(f"/estimate/{u}/{i}").get_data(as_text=True)) for u, i in zip(pairs.user, pairs.item)]
    merged = pairs.merge(scored, on=["user", "item"], how="left").drop_duplicates(["user", "item"])
    by_pair = dict(zip(zip(merged.user, merged.item), merged.estimate))
    np.testing.assert_allclose([by_pair[(u, i)] for u, i in zip(pairs.user, pairs.item)], served, atol=1e-6)

    # top 10 per user with the other version, asked for by number, as a Delta table
    users = pd.DataFrame({"user": [f"u{n}" for n in range(65)]})
    users.to_parquet(tmp_path / "users.parquet")
    conf = write_conf(tmp_path / "score.conf", config)
    assert main(["score", "--conf", str(conf), "--input", str(tmp_path / "users.parquet"),
                 "--output", str(tmp_path / "top"), "--version", str(other)]) == 0
    from deltalake import DeltaTable
    top = DeltaTable(str(tmp_path / "top")).to_pandas()
    assert len(top) == 65 and set(top["model_version"]) == {other}
    client = serving_client(config, als_factors(2), other)
    for row in top.itertuples():
        answer = client.get(f"/recommend/{row.user}?howMany=10", headers={"Accept": "application/json"})
        if int(row.user[1:]) >= 60:   # an unknown user: no rows, and a 404 from serving
            assert answer.status_code == 404 and list(row.items) == []
            continue
        expected = answer.get_json()
        assert list(row.items) == [e["id"] for e in expected]
        np.testing.assert_allclose(list(row.scores), [e["value"] for e in expected], atol=1e-6)


def test_the_alias_is_resolved_to_one_version_and_unknown_ones_are_errors(als_versions):
    config, (champion, other) = als_versions
    assert resolve_version(config, None, None) == champion
    assert resolve_version(config, other, None) == other
    with pytest.raises(ScoringError, match="no version 99"):
        resolve_version(config, 99, None)
    with pytest.raises(ScoringError, match="no alias 'challenger'"):
        resolve_version(config, None, registry.CHALLENGER)


def register_example(make_config, tmp_path, app: str):
    """The app's example model registered as champion with its pyfunc and signature, and its serving app."""
    from tests.serving_helpers import example_app

    example = make_config(app).app.resolve("example")()
    config = make_config(app, **example.config_overrides)
    example.state.save(tmp_path / "state")
    signature = config.app.resolve("batch")(config).model_signature(example.state)
    registry.log_and_register(config, tmp_path / "state", config.app.resolve("pyfunc")(), {"layer": "batch"},
                              [registry.CHAMPION], signature=signature)
    return config, example_app(make_config, tmp_path / "serving", app).test_client()


def test_kmeans_assignments_and_distances_equal_the_serving_layers(make_config, spark, tmp_path):
    config, client = register_example(make_config, tmp_path, "kmeans")
    points = pd.DataFrame(np.random.default_rng(4).normal(2.5, 3, (INPUTS, 2)), columns=["a", "b"])
    points.to_csv(tmp_path / "points.csv", index=False)
    score(config, str(tmp_path / "points.csv"), str(tmp_path / "assigned.parquet"))
    scored = pd.read_parquet(tmp_path / "assigned.parquet").sort_values(["a", "b"])
    points = points.sort_values(["a", "b"])
    lines = [f"{a!r},{b!r}" for a, b in zip(points.a, points.b)]
    assigned = client.post("/assign", data="\n".join(lines), headers={"Accept": "application/json"}).get_json()
    assert scored["cluster"].tolist() == assigned
    distances = [float(client.get(f"/distanceToNearest/{line}").get_data(as_text=True)) for line in lines]
    np.testing.assert_allclose(scored["distance"], distances, atol=1e-6)
    assert set(scored["model_version"]) == {1}


def test_forest_predictions_equal_the_serving_layers(make_config, spark, tmp_path):
    from headwater.apps.forest.example import PREDICTORS, small_lines

    config, client = register_example(make_config, tmp_path, "rdf-classification")
    lines = small_lines("classification", INPUTS, seed=5, labelled=False)
    rows = pd.DataFrame([line.split(",")[1:5] for line in lines], columns=PREDICTORS)
    rows[["x0", "x1", "x2"]] = rows[["x0", "x1", "x2"]].astype(float)
    rows.insert(0, "id", [line.split(",")[0] for line in lines])
    rows.to_parquet(tmp_path / "rows.parquet")
    score(config, str(tmp_path / "rows.parquet"), str(tmp_path / "predicted.csv"))
    scored = pd.read_csv(next((tmp_path / "predicted.csv").glob("part-*.csv")))
    predicted = dict(zip(scored["id"], scored["prediction"]))
    served = client.post("/predict", data="\n".join(lines), headers={"Accept": "application/json"}).get_json()
    assert [predicted[line.split(",")[0]] for line in lines] == served
    yes = dict(zip(scored["id"], scored["yes"]))
    for line in lines[:50]:
        distribution = client.get(f"/classificationDistribution/{line}",
                                  headers={"Accept": "application/json"}).get_json()
        assert yes[line.split(",")[0]] == pytest.approx(next(d["value"] for d in distribution if d["id"] == "yes"),
                                                        abs=1e-6)
