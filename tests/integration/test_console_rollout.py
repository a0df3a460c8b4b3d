"""The console's rollout card in a real browser: loaded versions with their memory, the split, drift per
version and the decision history."""
from __future__ import annotations

import os
from pathlib import Path

from headwater import promotion, registry
from serving_layer.app_context import MODELS
from serving_layer.loaded_versions import PREVIOUS
from tests.integration.test_console_browser import WAIT_MS, browser, served_with_registry_facts  # noqa: F401
from tests.serving_helpers import live_server


def test_the_console_shows_versions_split_drift_and_decisions(make_config, tmp_path, browser):  # noqa: F811
    app, version = served_with_registry_facts(make_config, tmp_path, more=[
        "headwater.serving.routing.challenger-percent=10", "headwater.serving.routing.shadow=true"])
    manager = app.extensions[MODELS]
    config = app.config["HEADWATER"]
    manager.base_version = version
    manager.versions.keep(version + 5, PREVIOUS, manager.model)
    manager._publish_memory()
    features = [{"name": "new_user", "score": 0.2, "p_adjusted": 0.63},
                {"name": "strength", "score": 9.1, "p_adjusted": 8e-10}]
    manager.metrics.set_drift(version, {"alarm": True, "rows": 1000, "worst": "strength", "features": features})
    promotion.record_move(config, registry.CHAMPION, version, version + 5, "rollback", promotion.CAUSE_AUTO_ROLLBACK,
                          "sequential rollback test: mean loss 0.81 vs 0.24 over 900 live events")
    with live_server(app) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(f"{base}/")
        page.wait_for_function("document.querySelector('#history tbody').innerText.includes('automatic')",
                               timeout=WAIT_MS)
        versions = page.inner_text("#versions tbody")
        assert f"{version}\tchampion" in versions and f"{version + 5}\tprevious" in versions and "MB" in versions
        assert page.inner_text("#split") == "challenger share 10 % · shadow on"
        assert "ALARM\tstrength\t9.100" in page.inner_text("#drift tbody") and page.is_hidden("#drift-none")
        assert f"v{version + 5} → v{version}" in page.inner_text("#history tbody")
        page.screenshot(path=str(Path(os.environ.get("HEADWATER_ROLLOUT_SCREENSHOT", tmp_path / "rollout.png"))),
                        full_page=True)
