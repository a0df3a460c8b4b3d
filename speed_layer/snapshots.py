"""Speed snapshots: the live model registered with alias ``speed`` and the tags a layer resumes from."""
from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

from headwater import registry
from speed_layer.live_evaluation import LiveEvaluation
from speed_layer.model_state import Frozen

log = logging.getLogger(__name__)


def register_snapshot(config, frozen: Frozen, evaluation: LiveEvaluation,
                      beside: list[dict] | None = None) -> registry.RegisteredModel:
    """Register a frozen copy of the live model.

    ``update_offset`` is the first update-topic offset after the speed layer's last published record;
    ``input_offsets`` is the input the snapshot reflects; ``headwater.prequential`` the live-evaluation
    totals so far; ``headwater.rollout`` the versions learning beside the champion and their tests
    (``beside``, :meth:`speed_layer.rollout.RolloutGuard.records`). A speed layer or a serving replica
    that loads it resumes exactly there. The run of the snapshot carries the live figures too (MLflow:
    the snapshot run's metrics).
    """
    started = time.perf_counter()
    tags = {registry.TAG_LAYER: "speed", registry.TAG_BASE_VERSION: str(frozen.base_version),
            registry.TAG_INPUT_OFFSETS: registry.offsets_tag(frozen.covered),
            registry.TAG_PREQUENTIAL: evaluation.tag()}
    if beside is not None:
        tags[registry.TAG_ROLLOUT] = json.dumps(beside, separators=(",", ":"))
    if frozen.update_offset is not None:
        tags[registry.TAG_UPDATE_OFFSET] = str(frozen.update_offset)
    with tempfile.TemporaryDirectory(prefix="headwater-speed-") as tmp:
        frozen.model.save(Path(tmp))
        registered = registry.log_and_register(config, Path(tmp), config.app.resolve("pyfunc")(), tags=tags,
                                               aliases=[registry.SPEED])
    figures = evaluation.flat_figures()
    if figures and registered.run_id:
        registry.log_metrics(config, registered.run_id, figures, step=evaluation.events)
    log.info("speed snapshot: registered version %s (base %s, update offset %s, input %s) in %.1f s",
             registered.version, frozen.base_version, frozen.update_offset, frozen.covered,
             time.perf_counter() - started)
    return registered


__all__ = ["register_snapshot"]
