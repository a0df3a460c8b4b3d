"""Registering a generation's model and promoting it: the champion alias, the MODEL notice, the history.

Every best candidate is registered (tags ``layer=batch``, ``delta_version``, row counts,
``headwater.gate`` = ``passed`` or ``failed``) so it can be inspected or forced with ``headwater
promote``; only a promoted version gets the ``champion`` alias, a MODEL notice on the update topic and
a line in the alias history (:mod:`headwater.promotion`, cause ``batch gate``).

Promotion is three steps in this order: ``before_promotion(version)`` (the runner tags the version
with the update topic's end, ``update_offset``), the ``champion`` alias moves, ``publish`` sends the
MODEL notice. A layer that (re)starts between two steps finds a consistent registry: the old champion,
or the new one with its ``update_offset``. If a step fails, the alias is put back (or never moved), the
old champion keeps serving, and the run records why.
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from batch_layer.candidates import Candidate
from batch_layer.gate import TAG_REFIT
from headwater import promotion, registry
from headwater.api import BatchApp, SplitData
from headwater.config import Config
from headwater.messages import ModelNotice

log = logging.getLogger(__name__)


def register(app: BatchApp, config: Config, best: Candidate, model, model_split: SplitData, delta_version,
             version_tags, run_id, refit: bool, gate_passed: bool) -> registry.RegisteredModel:
    """``model`` registered as a version logged in the generation's run ``run_id``, with its lineage tags."""
    tags = {registry.TAG_LAYER: "batch", registry.TAG_DELTA_VERSION: delta_version,
            "candidate_run_id": best.run_id, **({} if best.score is None else {"score": best.score}),
            TAG_REFIT: str(refit).lower(), **version_tags, **app.describe(model),
            promotion.TAG_GATE: "passed" if gate_passed else "failed"}
    with tempfile.TemporaryDirectory(prefix="headwater-model-") as directory:
        app.save_model(model, model_split, Path(directory))
        return registry.log_and_register(
            config, Path(directory), config.app.resolve("pyfunc")(), tags,
            aliases=[], run_id=run_id, signature=app.model_signature(model))


def promote(config: Config, registered: registry.RegisteredModel, delta_version, reason: str, run_id: str,
            before_promotion: Callable[[int], None] | None,
            publish: Callable[[ModelNotice], None] | None) -> str | None:
    """Tag, move the alias, announce (see the module docstring): None once promoted, else the run's new reason.

    A failure leaves the old champion; the generation's run then records ``promoted=false`` and why.
    """
    version = registered.version
    previous = registry.get_alias_version(config, registry.CHAMPION)
    try:
        if before_promotion is not None:
            before_promotion(version)
        registry.set_alias(config, registry.CHAMPION, version)
        try:
            if publish is not None:
                publish(ModelNotice(registered.name, version, delta_version))
        except Exception:
            _restore_champion(config, previous)
            raise
    except Exception as exc:  # the generation's model stays registered; the old champion serves on
        log.exception("promoting version %s failed; champion version %s stays", version, previous)
        failed = f"{reason}; promotion failed, champion version {previous} stays: {type(exc).__name__}: {exc}"
        registry.client(config).set_tag(run_id, "promoted", "false")
        registry.client(config).set_tag(run_id, "reason", failed[:5000])
        return failed
    try:
        promotion.record_move(config, registry.CHAMPION, version, previous, "promote", promotion.CAUSE_BATCH, reason)
    except Exception:  # the promotion stands; only its line in `headwater history` is missing
        log.exception("recording the promotion of version %s in the alias history failed", version)
    return None


def _restore_champion(config: Config, previous: int | None) -> None:
    if previous is None:
        registry.client(config).delete_registered_model_alias(registry.registered_model_name(config),
                                                              registry.CHAMPION)
    else:
        registry.set_alias(config, registry.CHAMPION, previous)
