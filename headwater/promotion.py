"""Moving an alias, the one way every layer and the operator does it, and the alias history MLflow does not keep.

A move to version ``N`` is three steps in this order: tag ``N`` with the update topic's current end
(``update_offset``: UPs before it were computed on other versions, or on ``N`` before the speed layer
re-folded its data, so a layer loading ``N`` starts there), move the alias, publish the MODEL notice on
``<id>.update`` (serving and speed reload on it). A layer that (re)starts between two steps finds a
consistent registry; if the notice cannot be sent the alias is put back, the move's record deleted and
the error raised. The record is written before the notice, so a layer reacting to the notice finds it.

Every move is recorded as an MLflow run of the app's experiment, tagged with the alias, the versions
before and after, the cause (``batch gate``, ``operator``, ``automatic rollback``, ...) and the reason;
:func:`history` reads them back in order (``headwater history``). A rollback decision run carries
``headwater.decision = rollback`` and the sequential test's figures.

>>> describe_move({"time": "2026-12-02 02:40:11", "alias": "champion", "previous": "1", "version": "2",
...                "decision": "promote", "cause": "operator", "reason": "headwater promote"})
'2026-12-02 02:40:11  champion    v1 -> v2  promote   operator: headwater promote'
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from headwater import registry
from headwater.messages import ModelNotice, encode_model_notice

if TYPE_CHECKING:
    from headwater.config import Config

log = logging.getLogger(__name__)

# Tags of a move's MLflow run.
TAG_MOVE = "headwater.alias_move"      # "true": the run records an alias move (what history lists)
TAG_DECISION = "headwater.decision"    # promote | rollback
TAG_ALIAS = "headwater.alias"
TAG_VERSION = "headwater.version"
TAG_PREVIOUS = "headwater.previous_version"  # "none" when the alias was not set
TAG_CAUSE = "headwater.cause"
TAG_REASON = "headwater.reason"
# Version tag: a batch generation's gate verdict ("passed" or "failed"; a failed one gets no alias).
TAG_GATE = "headwater.gate"

CAUSE_BATCH, CAUSE_OPERATOR, CAUSE_AUTO_ROLLBACK, CAUSE_AUTO_PROMOTE = (
    "batch gate", "operator", "automatic rollback", "automatic promotion")


class OperatorError(Exception):
    """An operator's command that cannot be done as asked; nothing was changed (the CLI exits 2 with it)."""


class PromotionError(OperatorError):
    """An alias move that cannot be made (unknown version, no previous champion); the registry is unchanged."""


def tag_update_offset(config: Config, version: int) -> None:
    """Tag a version about to take an alias with the update topic's current end (``update_offset``)."""
    from headwater.kafka_admin import ensure_topics, true_end_offsets

    bootstrap = config.kafka
    ensure_topics(bootstrap, {config.update_topic: config.get("headwater.kafka.update-partitions")})
    registry.set_version_tag(config, version, registry.TAG_UPDATE_OFFSET,
                             registry.offsets_tag(true_end_offsets(bootstrap, config.update_topic)))


def publish_model_notice(config: Config, notice: ModelNotice) -> None:
    """Send a MODEL notice on ``<id>.update`` and wait until the broker acknowledged it (or raise)."""
    from headwater.kafka_producer import LineProducer

    with LineProducer(config.kafka) as producer:
        producer.send_bytes(config.update_topic, encode_model_notice(notice)).get(timeout=30)
    log.info("published MODEL notice for %s version %s (%s) on %s", notice.model_name, notice.version,
             notice.alias, config.update_topic)


def move_alias(config: Config, alias: str, version: int, cause: str, reason: str, decision: str = "promote",
               params: Mapping[str, Any] | None = None, metrics: Mapping[str, float] | None = None,
               artifacts: Mapping[str, Any] | None = None) -> str:
    """Tag, move ``alias`` to ``version``, announce, record; returns the id of the move's MLflow run.

    ``params``, ``metrics`` and ``artifacts`` (name -> JSON-able dict) go into the run (e.g. the
    sequential test's decision record). Raises :class:`PromotionError` for a version not registered.
    """
    mlflow_client = registry.client(config)
    name = registry.registered_model_name(config)
    model_version = _model_version(mlflow_client, name, version)
    previous = registry.get_alias_version(config, alias)
    tag_update_offset(config, version)
    registry.set_alias(config, alias, version)
    # recorded before the notice: a layer that reacts to the notice finds the move (and its decision) in the history
    run_id = record_move(config, alias, version, previous, decision, cause, reason, params, metrics, artifacts)
    delta = model_version.tags.get(registry.TAG_DELTA_VERSION, "")
    try:
        publish_model_notice(config, ModelNotice(name, version, int(delta) if delta.isdigit() else None, alias))
    except Exception:
        _restore(config, alias, previous)
        mlflow_client.delete_run(run_id)   # the move did not happen
        raise
    return run_id


def record_move(config: Config, alias: str, version: int, previous: int | None, decision: str, cause: str,
                reason: str, params: Mapping[str, Any] | None = None, metrics: Mapping[str, float] | None = None,
                artifacts: Mapping[str, Any] | None = None) -> str:
    """Write one alias move into the history (an MLflow run of the app's experiment); returns its run id."""
    import mlflow

    registry.client(config)  # points the fluent API at the configured store
    tags = {TAG_MOVE: "true", TAG_DECISION: decision, TAG_ALIAS: alias, TAG_VERSION: str(version),
            TAG_PREVIOUS: "none" if previous is None else str(previous), TAG_CAUSE: cause, TAG_REASON: reason[:5000],
            registry.TAG_LAYER: "rollout"}
    run_name = f"{decision} {alias} v{previous if previous is not None else '-'} -> v{version} ({cause})"
    with mlflow.start_run(experiment_id=registry.experiment_id(config), run_name=run_name, tags=tags,
                          nested=mlflow.active_run() is not None) as run:
        if params:
            mlflow.log_params({k: "none" if v is None else v for k, v in params.items()})
        if metrics:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
        for file_name, content in (artifacts or {}).items():
            mlflow.log_dict(content, file_name)
    log.info("%s: %s of %s v%s -> v%s (%s: %s)", decision, alias, registry.registered_model_name(config), previous,
             version, cause, reason)
    return run.info.run_id


def history(config: Config, alias: str | None = None) -> list[dict[str, str]]:
    """Every recorded alias move, oldest first (``alias``: only that alias's)."""
    mlflow_client = registry.client(config)
    query = f"tags.`{TAG_MOVE}` = 'true'" + (f" and tags.`{TAG_ALIAS}` = '{alias}'" if alias else "")
    moves, token = [], None
    while True:
        page = mlflow_client.search_runs([registry.experiment_id(config)], filter_string=query,
                                         order_by=["attributes.start_time ASC"], page_token=token)
        for run in page:
            tags = run.data.tags
            moves.append({"time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(run.info.start_time / 1000)),
                          "alias": tags[TAG_ALIAS], "version": tags[TAG_VERSION], "previous": tags[TAG_PREVIOUS],
                          "decision": tags[TAG_DECISION], "cause": tags[TAG_CAUSE], "reason": tags.get(TAG_REASON, ""),
                          "run_id": run.info.run_id})
        token = page.token
        if not token:
            return moves


def replaced_champion(config: Config, version: int) -> tuple[int, str] | None:
    """(the champion ``version`` replaced, that move's decision) when the latest champion move made ``version``
    champion; None otherwise (another version moved since, or ``version`` was the first champion)."""
    moves = history(config, registry.CHAMPION)
    last = moves[-1] if moves else {}
    if last.get("version") != str(version) or not last.get("previous", "").isdigit():
        return None
    return int(last["previous"]), last["decision"]


def describe_move(move: Mapping[str, str]) -> str:
    """One line of ``headwater history``."""
    previous = "-" if move["previous"] == "none" else f"v{move['previous']}"
    return (f"{move['time']}  {move['alias']:<10}  {previous} -> v{move['version']}  {move['decision']:<8}  "
            f"{move['cause']}: {move['reason']}")


def previous_champion(config: Config) -> tuple[int, int]:
    """(current champion, the champion it replaced): the last promotion, not rollback, that made the
    current champion; so a second rollback goes further back instead of undoing the first."""
    current = registry.get_alias_version(config, registry.CHAMPION)
    if current is None:
        raise PromotionError("there is no champion to roll back")
    moves = [m for m in history(config, registry.CHAMPION) if m["decision"] != "rollback"]
    for move in reversed(moves):
        if move["version"] == str(current) and move["previous"] != "none":
            return current, int(move["previous"])
    raise PromotionError(f"the history names no champion before version {current}")


def rollback(config: Config, cause: str = CAUSE_OPERATOR, reason: str = "headwater rollback", **record: Any) -> int:
    """Move ``champion`` back to the version it replaced; returns that version."""
    current, previous = previous_champion(config)
    move_alias(config, registry.CHAMPION, previous, cause, f"{reason} (from v{current})", decision="rollback",
               **record)
    return previous


def _model_version(mlflow_client, name: str, version: int):
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise PromotionError(f"{name} has no version {version}") from exc


def _restore(config: Config, alias: str, previous: int | None) -> None:
    if previous is None:
        registry.client(config).delete_registered_model_alias(registry.registered_model_name(config), alias)
    else:
        registry.set_alias(config, alias, previous)


def history_json(config: Config) -> str:
    """The history as JSON (``headwater history --json``)."""
    return json.dumps(history(config), indent=1)
