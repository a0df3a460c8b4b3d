"""The alias history (MLflow runs of alias moves) and which champion a rollback goes back to."""
from __future__ import annotations

import pytest

from headwater import promotion, registry
from tests.serving_helpers import register_example_champion


def record(config, version: int, previous: int | None, decision: str = "promote", cause=promotion.CAUSE_OPERATOR):
    registry.set_alias(config, registry.CHAMPION, version)
    return promotion.record_move(config, registry.CHAMPION, version, previous, decision, cause, f"to v{version}")


def test_history_lists_moves_in_order_with_their_cause_and_reason(make_config, tmp_path):
    config = make_config()
    for _ in range(3):
        register_example_champion(config, tmp_path, {})
    record(config, 1, None, cause=promotion.CAUSE_BATCH)
    record(config, 2, 1)
    run_id = record(config, 1, 2, decision="rollback", cause=promotion.CAUSE_AUTO_ROLLBACK)
    moves = promotion.history(config)
    assert [(m["previous"], m["version"], m["decision"], m["cause"]) for m in moves] == [
        ("none", "1", "promote", "batch gate"), ("1", "2", "promote", "operator"),
        ("2", "1", "rollback", "automatic rollback")]
    assert moves[-1]["run_id"] == run_id and moves[-1]["reason"] == "to v1"
    lines = [promotion.describe_move(m) for m in moves]
    assert "v2 -> v1  rollback  automatic rollback: to v1" in lines[2]


def test_rollback_goes_to_the_champion_replaced_and_a_second_one_further_back(make_config, tmp_path):
    config = make_config()
    for _ in range(3):
        register_example_champion(config, tmp_path, {})
    record(config, 1, None)
    record(config, 2, 1)
    record(config, 3, 2)
    assert promotion.previous_champion(config) == (3, 2)
    record(config, 2, 3, decision="rollback")
    assert promotion.previous_champion(config) == (2, 1)     # not back to 3
    record(config, 1, 2, decision="rollback")
    with pytest.raises(promotion.PromotionError, match="no champion before version 1"):
        promotion.previous_champion(config)


def test_rollback_without_a_champion_is_an_error(make_config):
    with pytest.raises(promotion.PromotionError, match="no champion"):
        promotion.previous_champion(make_config())
