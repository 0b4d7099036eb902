"""The page's ControlNet unit in a real browser: the installed ControlNets and preprocessors are offered,
the sketch (or an uploaded picture) is the control image, and the job paints with the unit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keypaint.core.painter import Painter
from keypaint.server.config import ServerConfig
from tests.core.controlnet_files import tiny_controlnet
from tests.server.conftest import ARGS, CHROMIUM, Running, start_server
from tests.server.test_page_canvas import stroke

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="browser tests need Debian's chromium: apt-get install chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need `pip install playwright`")


@pytest.fixture(scope="module")
def controlled_site(tiny_sd1: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("home")
    tiny_controlnet(tiny_sd1).save_pretrained(home / "controlnet" / "lines")
    config = ServerConfig(out=home / "outputs", home=home)
    running = start_server(config, painter=Painter(tiny_sd1, home=home))  # ControlNets found in home
    yield running
    running.stop()


@pytest.fixture(scope="module")
def page(controlled_site: Running) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1600})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(controlled_site.url)
        page.wait_for_selector("body[data-ready=true]")
        yield page
        browser.close()
        assert errors == []


def test_the_sketch_steers_the_picture_through_a_controlnet(page: Any, controlled_site: Running) -> None:
    sync_api.expect(page.locator("#control")).to_be_visible()
    models = page.locator("#control-model option").all_inner_texts()
    assert len(models) == 1 and models[0].startswith("lines [")
    modules = set(page.locator("#control-preprocess option").all_inner_texts())
    assert {"none", "canny", "scribble_xdog"} <= modules
    page.fill("#keyword-input", "red apple")
    assert "control_units" not in page.evaluate("request()")  # off until asked for
    stroke(page, "#sketch-canvas", [(0.2, 0.2), (0.8, 0.8)])
    page.check("#control-on")
    page.fill("#control-weight", "0.8")
    [unit] = page.evaluate("request()")["control_units"]
    assert unit["model"] == models[0] and unit["preprocess"] == "none" and unit["weight"] == 0.8
    assert unit["image"] == page.evaluate("drawings.sketch.toDataURL()")
    page.fill("#steps", "2")
    page.click("#generate")
    sync_api.expect(page.locator("#status")).to_have_text("done", timeout=120_000)
    page.wait_for_selector("#result img")
    with controlled_site.client() as client:
        [job, *_] = client.get("/api/jobs").json()["jobs"]
    [recorded] = job["params"]["control_units"]
    assert recorded["model"] == "lines" and recorded["weight"] == 0.8


def test_an_uploaded_picture_is_the_control_image(page: Any, tmp_path: Path) -> None:
    from PIL import Image

    picture = tmp_path / "edges.png"
    Image.new("RGB", (64, 64), "white").save(picture)
    page.set_input_files("#control-image", str(picture))
    page.wait_for_function("() => request().control_units[0].image !== drawings.sketch.toDataURL()")
    assert page.evaluate("request()")["control_units"][0]["image"].startswith("data:image/png;base64,")
