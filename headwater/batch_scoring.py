"""Offline scoring of a whole table with one registered version (``headwater score``), on Spark.

The alias (default ``champion``) is resolved to one version before the job starts, so a promotion
during the job cannot mix two models in one output; that version is written into every output row
(``model_version``). The version's pyfunc is applied with ``mlflow.pyfunc.spark_udf`` in the job's own
Python (``env_manager="local"``), so executors need headwater's packages and nothing else.

What comes out is whatever the app's pyfunc answers, one answer per input row: ALS top-N per user
(``items``, ``scores``; parameter ``per_row``) or, with an ``item`` column, estimates per (user, item);
k-means assignments and distances (parameter ``with_distance``); forest predictions (and class
probabilities). The answer's columns and types are read from the pyfunc's answer on the first rows.
Input: a Delta table, Parquet, or CSV with a header (by its name ending); output: Delta, or Parquet /
CSV by the name ending (``--format`` decides otherwise). Delta output is written from the driver.

>>> spark_type(pd.Series([["a"], []]))
'array<string>'
>>> spark_type(pd.Series([1.5])), spark_type(pd.Series([2])), spark_type(pd.Series(["x"]))
('double', 'bigint', 'string')
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from headwater import registry
from headwater.config import Config
from headwater.promotion import OperatorError

log = logging.getLogger(__name__)

VERSION_COLUMN = "model_version"
# Parameters asking a pyfunc for one answer per input row with everything in it; passed when the
# version's signature declares them.
ROW_ALIGNED_PARAMS = {"per_row": True, "with_distance": True}
SAMPLE_ROWS = 50


class ScoringError(OperatorError):
    """A scoring job that cannot start (no such version or alias, unreadable input); nothing was written."""


@dataclass(frozen=True)
class ScoreResult:
    version: int
    rows: int
    output: str
    columns: list[str]


def resolve_version(config: Config, version: int | None, alias: str | None) -> int:
    """The one version a job scores with: ``version`` if registered, else what ``alias`` (champion) names now."""
    if version is not None:
        from mlflow.exceptions import MlflowException

        try:
            registry.client(config).get_model_version(registry.registered_model_name(config), str(version))
        except MlflowException as exc:
            raise ScoringError(f"{registry.registered_model_name(config)} has no version {version}") from exc
        return version
    alias = alias or registry.CHAMPION
    found = registry.get_alias_version(config, alias)
    if found is None:
        raise ScoringError(f"{registry.registered_model_name(config)} has no alias {alias!r}")
    return found


def read_input(spark, path: str):
    """A Delta table, a CSV file or directory (``.csv``: header row, types inferred) or Parquet."""
    from deltalake import DeltaTable

    from headwater.delta_tables import read_table_version

    if not Path(path).exists() and "://" not in path:
        raise ScoringError(f"{path} does not exist")
    if not Path(path).is_file() and DeltaTable.is_deltatable(path):
        return read_table_version(spark, path)[0]
    if path.rstrip("/").endswith(".csv"):
        return spark.read.csv(path, header=True, inferSchema=True)
    return spark.read.parquet(path)


def spark_type(column: pd.Series) -> str:
    """The Spark SQL type of a pandas answer column (lists become arrays of their first element's type)."""
    if column.dtype == object:
        first = next((v for v in column if v is not None and not (isinstance(v, list) and not v)), None)
        if isinstance(first, list):
            return f"array<{spark_type(pd.Series(first))}>"
        if first is None and any(isinstance(v, list) for v in column):
            return "array<string>"
        return "string"
    if pd.api.types.is_bool_dtype(column):
        return "boolean"
    if pd.api.types.is_integer_dtype(column):
        return "bigint"
    if pd.api.types.is_float_dtype(column):
        return "double"
    return "string"


def score(config: Config, input_path: str, output_path: str, version: int | None = None, alias: str | None = None,
          output_format: str | None = None, how_many: int | None = None) -> ScoreResult:
    """Score ``input_path`` with one version into ``output_path`` (see the module docstring)."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    from headwater.spark import get_spark

    chosen = resolve_version(config, version, alias)
    uri = f"models:/{registry.registered_model_name(config)}/{chosen}"
    log.info("scoring %s with %s", input_path, uri)
    spark = get_spark(config)
    frame = read_input(spark, input_path)
    registry.client(config)
    local = mlflow.pyfunc.load_model(uri)
    declared = {p.name for p in (local.metadata.get_params_schema() or [])}
    params = {k: v for k, v in ROW_ALIGNED_PARAMS.items() if k in declared}
    if how_many is not None and "how_many" in declared:
        params["how_many"] = int(how_many)
    inputs = _input_columns(local, frame.columns)
    answer = local.predict(frame.select(*inputs).limit(SAMPLE_ROWS).toPandas(), params=params or None)
    answer = answer.to_frame() if isinstance(answer, pd.Series) else answer
    fields = [c for c in answer.columns if c not in frame.columns]   # ALS estimates repeat user, item
    result_type = "struct<" + ", ".join(f"`{c}`: {spark_type(answer[c])}" for c in fields) + ">"
    udf = mlflow.pyfunc.spark_udf(spark, uri, result_type=result_type, env_manager="local", params=params or None)
    scored = (frame.withColumn("__answer", udf(F.struct(*[F.col(c) for c in inputs])))
              .select(*[F.col(f"`{c}`") for c in frame.columns], *[F.col(f"__answer.`{c}`").alias(c) for c in fields])
              .withColumn(VERSION_COLUMN, F.lit(chosen).cast("bigint")))
    rows = _write(scored, output_path, output_format or _format_of(output_path))
    log.info("scored %d rows with version %s into %s", rows, chosen, output_path)
    return ScoreResult(chosen, rows, output_path, scored.columns)


def _input_columns(model, columns: list[str]) -> list[str]:
    schema = model.metadata.get_input_schema()
    names = [] if schema is None else [c for c in schema.input_names() if c in columns]
    return names or list(columns)


def _format_of(path: str) -> str:
    for suffix in ("csv", "parquet"):
        if path.rstrip("/").endswith("." + suffix):
            return suffix
    return "delta"


def _write(frame, path: str, output_format: str) -> int:
    from pyspark.sql import functions as F

    frame = frame.cache()
    try:
        rows = frame.count()
        if output_format == "csv":  # CSV has no arrays: lists become JSON
            arrays = [f.name for f in frame.schema.fields if f.dataType.typeName() == "array"]
            frame.select(*[F.to_json(F.col(f"`{c}`")).alias(c) if c in arrays else F.col(f"`{c}`")
                           for c in frame.columns]).write.mode("overwrite").csv(path, header=True)
        elif output_format == "parquet":
            frame.write.mode("overwrite").parquet(path)
        elif output_format == "delta":
            from deltalake import write_deltalake

            write_deltalake(path, frame.toArrow(), mode="overwrite")
        else:
            raise ScoringError(f"unknown output format {output_format!r} (delta, parquet or csv)")
    finally:
        frame.unpersist()
    return rows
