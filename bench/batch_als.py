"""One ALS batch generation on pyspark's MovieLens sample: time to split, train candidates, register.

Prints one JSON object. No broker needed: the MODEL notice is not published.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batch_layer.als import ALSUpdate  # noqa: E402
from batch_layer.ml_update import MLUpdate  # noqa: E402
from headwater.config import load_config  # noqa: E402
from headwater.delta_tables import read_table_version  # noqa: E402
from headwater.spark import get_spark  # noqa: E402
from tests.integration.test_batch_als import write_movielens_events  # noqa: E402


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-batch-als-"))
    config = load_config(overrides=[
        "headwater.id=bench-als", "headwater.app=als", f"headwater.storage.root={root / 'data'}",
        f"headwater.stack.var-dir={root / 'var'}", f"headwater.mlflow.tracking-uri=sqlite:///{root / 'mlflow.db'}",
        "headwater.als.hyperparams.features=[4, 8, 12]", "headwater.als.hyperparams.lambda=[0.05]",
        "headwater.ml.eval.candidates=3", "headwater.ml.eval.parallelism=2", "headwater.ml.eval.test-fraction=0.2"])
    started = time.monotonic()
    spark = get_spark(config)
    spark_start = time.monotonic() - started
    write_movielens_events(config.table_uri("events"))
    data, version = read_table_version(spark, config.table_uri("events"))
    started = time.monotonic()
    result = MLUpdate(ALSUpdate(config), config).run(data, version)
    generation = time.monotonic() - started
    print(json.dumps({
        "benchmark": "batch_als_generation", "events": 1501, "candidates": len(result.candidates),
        "spark_start_s": round(spark_start, 2), "generation_s": round(generation, 2),
        "promoted": result.promoted, "best": result.best.hyperparams,
        "best_metrics": {k: round(float(v), 4) for k, v in result.best.metrics.items()},
    }))


if __name__ == "__main__":
    main()
