"""The console page in headless Chromium (Debian's): model, freshness, live metric, update rate, forms that work."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from serving_layer.app_context import MODELS
from tests.serving_helpers import example_app, live_server, register_example_champion

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install "
                                                          "chromium; .ci/run does it): the console is not driven")
# the page polls every 2 s; a wait covers a few polls on a busy machine
WAIT_MS = 20_000


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # launch() gives every browser a fresh temporary profile
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-extensions", "--no-first-run"])
        yield chromium
        chromium.close()


def endpoint_count(app) -> int:
    """Operations of the app's spec that get a form: all but the console's own and the document."""
    spec = app.test_client().get("/openapi.json", headers={"Authorization": "Bearer r1"}).get_json()
    return sum(len(methods) for path, methods in spec["paths"].items()
               if not path.startswith("/console") and path != "/openapi.json")


def served_with_registry_facts(make_config, tmp_path, more=()):
    """The ALS example app, its model registered as champion (so the console has aliases and tags)."""
    app = example_app(make_config, tmp_path, more=list(more))
    version = register_example_champion(app.config["HEADWATER"], tmp_path, {"layer": "batch", "delta_version": 7})
    manager = app.extensions[MODELS]
    manager.model.version = version
    manager.apply_payloads([["X", f"live-{n}", [0.1, 0.2, 0.3], 0.0, {}] for n in range(12)])
    return app, version


def test_the_console_shows_the_model_its_freshness_metrics_and_forms(make_config, tmp_path, browser):
    app, version = served_with_registry_facts(make_config, tmp_path)
    metrics = app.extensions[MODELS].metrics  # two micro-batches' BATCH records, as the speed layer sends them
    metrics.reset_prequential(version)
    metrics.add_prequential(version, 600, {"live": {"miss_at_10": [420.0, 600.0]},
                                           "champion": {"miss_at_10": [450.0, 600.0]}})
    metrics.add_prequential(version, 600, {"live": {"miss_at_10": [400.0, 600.0]},
                                           "champion": {"miss_at_10": [450.0, 600.0]}})
    with live_server(app) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        requested = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto(f"{base}/")
        page.wait_for_function("document.querySelector('#model').innerText.includes('champion')", timeout=WAIT_MS)
        model = page.inner_text("#model")
        assert f"version\n{version}" in model.replace("\t", "\n") and "data version" in model and "7" in model
        assert page.inner_text("#ready") == "ready"
        assert page.inner_text("#freshness").endswith(" s")
        assert page.inner_text("#updates") == "12"
        assert page.inner_text("#prequential tbody") == "hit rate at 10\t0.3167\t0.2500"
        assert page.inner_text("#prequential-events").startswith("1200 events") and page.is_hidden("#prequential-none")
        assert page.locator("#rate rect").count() == 30
        assert page.locator("form.endpoint").count() == endpoint_count(app)
        recommend = page.locator("form.endpoint[data-path='/recommend/{user}']")
        recommend.locator("input[name=user]").fill("u0")
        recommend.locator("input[name=howMany]").fill("3")
        recommend.locator("button").click()
        recommend.locator("pre").wait_for(state="visible", timeout=WAIT_MS)
        assert recommend.locator(".status").inner_text().startswith("200")
        assert recommend.locator("pre").inner_text().count('"id"') == 3
        page.screenshot(path=str(Path(os.environ.get("HEADWATER_CONSOLE_SCREENSHOT", tmp_path / "console.png"))),
                        full_page=True)
        # the API docs page: Swagger UI from the app's own files, on the app's own document
        page.goto(f"{base}/docs")
        page.wait_for_selector(".opblock", timeout=WAIT_MS)
        assert page.locator(".opblock").count() == endpoint_count(app) + 2  # + the console's and the document
        outside = [url for url in requested if not url.startswith(base) and not url.startswith("data:")]
        assert not outside, f"the pages loaded files from elsewhere: {outside}"


def test_the_console_asks_for_a_token_and_works_without_a_live_metric(make_config, tmp_path, browser):
    app, _ = served_with_registry_facts(make_config, tmp_path, ['headwater.serving.api.read-tokens=["r1"]'])
    with live_server(app) as base:
        page = browser.new_page()
        page.goto(f"{base}/")
        page.wait_for_selector("#notice:not([hidden])", timeout=WAIT_MS)
        assert "needs a token" in page.inner_text("#notice")
        page.fill("#token", "r1")
        page.click("#token-form button")
        page.wait_for_function("document.querySelector('#model').innerText.includes('champion')", timeout=WAIT_MS)
        assert page.is_hidden("#notice")
        assert page.is_visible("#prequential-none")
        assert page.locator("form.endpoint").count() == endpoint_count(app)
