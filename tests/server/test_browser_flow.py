"""The web page on a Flux.1 server: the Shift and Distilled CFG fields reach the job and come back with
"reuse these settings"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from keypaint.core.painter import Painter
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny_flow import tiny_flow_model
from keypaint.server.config import ServerConfig
from tests.server.conftest import CHROMIUM, Running, start_server
from tests.server.test_browser import DESKTOP, browser, open_page  # noqa: F401  (browser: a fixture)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="browser tests need Debian's chromium: apt-get install chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need `pip install playwright`")


@pytest.fixture(scope="module")
def flux_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_server(ServerConfig(out=tmp_path_factory.mktemp("flux-site") / "outputs"),
                           painter=Painter(tiny_flow_model(ModelKind.FLUX)))
    yield running
    running.stop()


def test_flux_fields_reach_the_job(browser: Any, flux_site: Running) -> None:  # noqa: F811
    with open_page(browser, flux_site, DESKTOP) as page:
        page.fill("#keyword-input", "red apple")
        page.press("#keyword-input", "Enter")
        for field, value in (("#steps", "2"), ("#width", "32"), ("#height", "32"), ("#seed", "3"),
                             ("#shift", "2"), ("#distilled", "4.5")):
            page.fill(field, value)
        page.click("#generate")
        page.wait_for_selector("#result img")
        with flux_site.client() as client:
            image = client.get("/api/images").json()["images"][0]
        assert image["params"]["flow"] == {"shift": 2.0, "distilled_guidance": 4.5}
        assert image["request"]["distilled_guidance"] == 4.5
