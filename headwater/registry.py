"""The MLflow model registry as headwater uses it: one registered model per app id, pyfunc versions, aliases.

Layers never call MLflow themselves: the batch layer logs and registers through
:func:`log_and_register`, the speed and serving layers find where to start through :func:`resume_point`.
Version tags record lineage (``layer``, ``delta_version``, ``base_version``, ``update_offset``, counts);
aliases say which version plays which role (``champion``, ``speed``, ``challenger``). A version's
artifacts are one directory (the app's saved state), logged as the pyfunc artifact ``model``.

Downloaded versions are cached under ``<headwater.stack.var-dir>/registry-cache/<name>/<version>``:
a registered version never changes, so a replica restarts without downloading it again.

>>> from headwater.config import load_config
>>> registered_model_name(load_config(overrides=["headwater.id=movies", "headwater.app=als"]))
'movies'
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.config import Config

log = logging.getLogger(__name__)

MODEL_NAME_IN_RUN = "model"
# The pyfunc artifact holding a version's saved state (what the app's state class loads).
MODEL_ARTIFACT = "model"

# Aliases: the batch model that serves, the latest speed snapshot, an optional model under test.
CHAMPION, SPEED, CHALLENGER = "champion", "speed", "challenger"
# Version tags.
TAG_LAYER = "layer"                  # batch | speed
TAG_DELTA_VERSION = "delta_version"  # the events table version a batch model read
TAG_BASE_VERSION = "base_version"    # the champion a speed snapshot was built on
TAG_UPDATE_OFFSET = "update_offset"  # the first <id>.update offset the version does not reflect
TAG_INPUT_OFFSETS = "input_offsets"  # where a version's data ends in <id>.input (batch: its training data;
#                                      speed snapshot: the events folded into it)
TAG_PREQUENTIAL = "headwater.prequential"  # on a speed snapshot: the live-evaluation totals it includes
TAG_ROLLOUT = "headwater.rollout"  # on a speed snapshot: the versions learning beside the champion, and their tests
TAG_LIVE_EVALUATION = "headwater.live_evaluation"  # on the run of a champion's live metrics: its version
# A batch version's reference profile for the drift alarms (headwater.drift_profile), in its run.
DRIFT_PROFILE_ARTIFACT = "drift_profile.json"
# Listing requirements explicitly keeps MLflow from inferring them by importing the model in a
# subprocess and asking pip: measured 0.04 s per log_model instead of 2 s.
PIP_REQUIREMENTS = ("mlflow", "numpy", "pandas", "pyarrow")


@dataclass(frozen=True)
class RegisteredModel:
    """One downloaded model version: ``path`` is the directory of its saved state."""

    name: str
    version: int
    path: Path
    tags: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None


def registered_model_name(config: Config) -> str:
    return config.app_id


def tracking_uri(config: Config) -> str:
    return config.get("headwater.mlflow.tracking-uri")


def client(config: Config):
    """An MlflowClient for the configured store; also points MLflow's fluent API at it."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri(config)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(config: Config) -> str:
    """The id of the app's experiment (``headwater.mlflow.experiment`` or the app id), created if needed."""
    mlflow_client = client(config)
    name = config.get("headwater.mlflow.experiment") or config.app_id
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.create_experiment(name, artifact_location=_local_artifact_location(config, name))
    except MlflowException:  # created meanwhile by another layer
        return mlflow_client.get_experiment_by_name(name).experiment_id


def _local_artifact_location(config: Config, experiment: str) -> str | None:
    # A sqlite store used without a server puts artifacts under ./mlruns of whatever the current
    # directory is; keep them next to the database instead. A server decides for itself.
    uri = tracking_uri(config)
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    return (database.parent / "mlartifacts" / experiment).resolve().as_uri()


def get_alias_version(config: Config, alias: str) -> int | None:
    """The version number ``alias`` points at, or None when the model or the alias does not exist."""
    version = _alias_version(client(config), registered_model_name(config), alias)
    return None if version is None else int(version.version)


def set_alias(config: Config, alias: str, version: int) -> None:
    client(config).set_registered_model_alias(registered_model_name(config), alias, str(version))
    log.info("alias %s of %s now points at version %s", alias, registered_model_name(config), version)


def set_version_tag(config: Config, version: int, key: str, value: Any) -> None:
    client(config).set_model_version_tag(registered_model_name(config), str(version), key, str(value))


def registered_data_versions(config: Config) -> set[int]:
    """Every ``events`` version that a registered model version names in its ``delta_version`` tag."""
    mlflow_client = client(config)
    versions, token = set(), None
    while True:
        page = mlflow_client.search_model_versions(f"name = '{registered_model_name(config)}'", page_token=token)
        versions |= {int(v.tags[TAG_DELTA_VERSION]) for v in page if v.tags.get(TAG_DELTA_VERSION, "").isdigit()}
        token = page.token
        if not token:
            return versions


def offsets_tag(offsets: Mapping[int, int]) -> str:
    """Kafka offsets per partition as a version tag (``update_offset``, ``input_offsets``)."""
    return json.dumps({str(p): int(o) for p, o in sorted(offsets.items())})


def parse_offsets_tag(tag: str | None) -> dict[int, int] | None:
    """An offsets tag: an int (partition 0) or JSON ``{"<partition>": offset}``.

    >>> parse_offsets_tag("17"), parse_offsets_tag('{"0": 5}'), parse_offsets_tag(None)
    ({0: 17}, {0: 5}, None)
    """
    if tag in (None, ""):
        return None
    value = json.loads(tag)
    if isinstance(value, int):
        return {0: value}
    return {int(p): int(o) for p, o in value.items()}


def download_alias(config: Config, alias: str) -> RegisteredModel | None:
    """Download (or reuse the cached copy of) the version ``alias`` points at; None if there is none."""
    mlflow_client = client(config)
    name = registered_model_name(config)
    version = _alias_version(mlflow_client, name, alias)
    return None if version is None else _registered(config, version)


def download_version(config: Config, version: int) -> RegisteredModel:
    """Download (or reuse the cached copy of) one version of the app's model, whatever its aliases."""
    return _registered(config, client(config).get_model_version(registered_model_name(config), str(version)))


def _registered(config: Config, version) -> RegisteredModel:
    return RegisteredModel(name=version.name, version=int(version.version),
                           path=_download_version(config, version.name, int(version.version)),
                           tags=dict(version.tags), run_id=version.run_id)


def log_and_register(config: Config, artifacts_dir: Path, python_model: Any, tags: Mapping[str, Any],
                     aliases: Sequence[str], run_id: str | None = None, signature: Any = None) -> RegisteredModel:
    """Log ``artifacts_dir`` as a pyfunc model's ``model`` artifact, register it, tag it, set aliases.

    The model is logged into run ``run_id`` (the active run when it is that one), or into a new run of
    the app's experiment. The returned version's ``path`` is a cached copy of ``artifacts_dir``.
    """
    import mlflow

    mlflow_client = client(config)
    name = registered_model_name(config)
    artifacts = {MODEL_ARTIFACT: str(artifacts_dir)}
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        info = _log_pyfunc(python_model, artifacts, signature)
    else:
        with mlflow.start_run(run_id=run_id, experiment_id=None if run_id else experiment_id(config)):
            info = _log_pyfunc(python_model, artifacts, signature)
    string_tags = {key: str(value) for key, value in tags.items()}
    version = mlflow.register_model(info.model_uri, name, tags=string_tags)
    for alias in aliases:
        mlflow_client.set_registered_model_alias(name, alias, version.version)
    log.info("registered %s version %s (aliases: %s)", name, version.version, ", ".join(aliases) or "none")
    # The artifacts are already local: copy them into the cache instead of downloading them again.
    path = _cache_dir(config, name, int(version.version))
    if not path.exists():
        _install(Path(artifacts_dir), path)
    return RegisteredModel(name=name, version=int(version.version), path=path, tags=string_tags,
                           run_id=version.run_id)


def _log_pyfunc(python_model: Any, artifacts: dict[str, str], signature: Any):
    import mlflow.pyfunc

    return mlflow.pyfunc.log_model(name=MODEL_NAME_IN_RUN, python_model=python_model, artifacts=artifacts,
                                   signature=signature, pip_requirements=list(PIP_REQUIREMENTS))


def _alias_version(mlflow_client, name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _cache_dir(config: Config, name: str, version: int) -> Path:
    var_dir = Path(config.get("headwater.stack.var-dir")).resolve()
    return var_dir / "registry-cache" / name / str(version)


def _download_version(config: Config, name: str, version: int) -> Path:
    path = _cache_dir(config, name, version)
    if path.exists():
        return path
    import mlflow.artifacts

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        model_dir = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=scratch,
            tracking_uri=tracking_uri(config), registry_uri=tracking_uri(config))
        _install(Path(model_dir) / _artifact_path(Path(model_dir)), path)
    log.info("downloaded %s version %s to %s", name, version, path)
    return path


def _artifact_path(model_dir: Path) -> str:
    """Where pyfunc put the ``model`` artifact in a downloaded model (MLflow names the folder after the source)."""
    from mlflow.models import Model

    return Model.load(str(model_dir)).flavors["python_function"]["artifacts"][MODEL_ARTIFACT]["path"]


def _install(source: Path, path: Path) -> None:
    """Copy ``source`` to ``path`` atomically, so concurrent readers never see a half-written version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=".staging-"))
    shutil.copytree(source, staging, dirs_exist_ok=True)
    try:
        os.replace(staging, path)
    except OSError:  # another process installed the same version first
        shutil.rmtree(staging, ignore_errors=True)
        if not path.exists():
            raise


def run_json(config: Config, run_id: str | None, name: str) -> dict | None:
    """A JSON artifact of a run (e.g. a version's drift profile), or None when the run has none."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    client(config)
    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{name}")
    except (MlflowException, OSError):
        return None


def live_evaluation_run(config: Config, base_version: int) -> str:
    """The run that collects the live (prequential) metrics of one champion version, created on first use."""
    mlflow_client = client(config)
    experiment = experiment_id(config)
    name = f"speed live evaluation v{base_version}"
    found = mlflow_client.search_runs([experiment], filter_string=f"tags.{TAG_LIVE_EVALUATION} = '{base_version}'",
                                      max_results=1)
    if found:
        return found[0].info.run_id
    run = mlflow_client.create_run(experiment, run_name=name,
                                   tags={TAG_LIVE_EVALUATION: str(base_version), TAG_LAYER: "speed"})
    return run.info.run_id


def log_metrics(config: Config, run_id: str, metrics: Mapping[str, float], step: int) -> None:
    """Metrics of one step (e.g. events seen) in a run, in one call."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client(config).log_batch(run_id, metrics=[Metric(k, float(v), now, int(step)) for k, v in metrics.items()])


@dataclass(frozen=True)
class ResumePoint:
    """Where a layer starts: the version to load, the champion it stands for, the update-topic offset."""

    chosen: RegisteredModel
    champion: RegisteredModel
    update_offset: int

    @property
    def champion_version(self) -> int:
        return self.champion.version


def resume_point(config: Config) -> ResumePoint | None:
    """The one rule by which the speed and serving layers start (None while there is no champion).

    Load the ``speed`` snapshot when it was built on the current champion (it is the champion plus
    the UPs before its ``update_offset``), else the champion; follow ``<id>.update`` from the chosen
    version's ``update_offset`` tag, else the champion's, else the topic's beginning. UPs before that
    offset were computed on older models or are already in the snapshot.
    """
    champion = download_alias(config, CHAMPION)
    if champion is None:
        return None
    chosen = champion
    snapshot = download_alias(config, SPEED)
    if snapshot is not None and snapshot.tags.get(TAG_BASE_VERSION) == str(champion.version):
        chosen = snapshot
    offsets = (parse_offsets_tag(chosen.tags.get(TAG_UPDATE_OFFSET))
               or parse_offsets_tag(champion.tags.get(TAG_UPDATE_OFFSET)) or {})
    # the update topic has exactly one partition (headwater.kafka.update-partitions)
    return ResumePoint(chosen, champion, offsets.get(0, 0))


__all__ = ["CHALLENGER", "CHAMPION", "MODEL_ARTIFACT", "SPEED", "RegisteredModel", "ResumePoint", "client",
           "download_alias", "download_version", "experiment_id", "get_alias_version", "live_evaluation_run",
           "log_and_register", "log_metrics", "registered_data_versions", "registered_model_name", "resume_point",
           "set_alias"]
