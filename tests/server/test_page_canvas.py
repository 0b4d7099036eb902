"""The page's drawing canvas (pen, eraser, undo, clear, brush size), the mask drawn over the init image,
and the hires and outpaint options, in a real browser (Playwright driving Debian's chromium)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.server.conftest import ARGS, CHROMIUM, Running

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="browser tests need Debian's chromium: apt-get install chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need `pip install playwright`")


@pytest.fixture(scope="module")
def page(site: Running) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(site.url)
        page.wait_for_selector("body[data-ready=true]")
        yield page
        browser.close()
        assert errors == []


def drawn(page: Any, name: str) -> np.ndarray:
    """The canvas `name` ("sketch", "mask") as the page would send it."""
    url = page.evaluate(f"drawings.{name}.toDataURL()")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L"))


def stroke(page: Any, root: str, points: list[tuple[float, float]]) -> None:
    """Drag the mouse over the canvas in `root` through `points` (fractions of its width and height)."""
    box = page.locator(f"{root} canvas").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for point in xy[1:]:
        page.mouse.move(*point, steps=4)
    page.mouse.up()


def test_pen_eraser_undo_clear_and_brush_size(page: Any) -> None:
    assert (drawn(page, "sketch") == 255).all() and page.evaluate("drawings.sketch.isEmpty()")
    stroke(page, "#sketch-canvas", [(0.1, 0.5), (0.9, 0.5)])
    thin = int((drawn(page, "sketch") < 128).sum())
    assert thin > 0 and not page.evaluate("drawings.sketch.isEmpty()")
    page.click("#sketch-canvas [data-undo]")
    assert page.evaluate("drawings.sketch.isEmpty()")
    page.locator("#sketch-canvas [data-brush]").fill("32")
    stroke(page, "#sketch-canvas", [(0.1, 0.5), (0.9, 0.5)])
    thick = int((drawn(page, "sketch") < 128).sum())
    assert thick > 2 * thin  # a bigger brush draws a broader line
    page.click("#sketch-canvas [data-tool=eraser]")
    stroke(page, "#sketch-canvas", [(0.5, 0.1), (0.5, 0.9)])
    assert 0 < int((drawn(page, "sketch") < 128).sum()) < thick
    page.click("#sketch-canvas [data-clear]")
    assert page.evaluate("drawings.sketch.isEmpty()")
    page.click("#sketch-canvas [data-undo]")  # the clear itself can be undone
    assert not page.evaluate("drawings.sketch.isEmpty()")
    page.click("#sketch-canvas [data-tool=pen]")


def test_sketch_as_init_image_mask_and_outpaint_in_the_request(page: Any) -> None:
    page.fill("#keyword-input", "red apple")
    page.click("#sketch-to-init")
    sync_api.expect(page.locator("#mask-box")).to_be_visible()
    body = page.evaluate("request()")
    assert body["init_image"].startswith("data:image/png") and "mask" not in body and "outpaint" not in body
    stroke(page, "#mask-canvas", [(0.2, 0.2), (0.8, 0.8)])
    mask = drawn(page, "mask")
    assert set(np.unique(mask)) <= {0, 255} and 0 < (mask == 255).mean() < 0.5  # white where drawn
    assert page.evaluate("request()")["mask"].startswith("data:image/png")
    page.fill("#outpaint-left", "16")
    body = page.evaluate("request()")
    assert body["outpaint"] == {"left": 16} and "mask" not in body  # outpainting makes its own mask
    page.fill("#outpaint-left", "0")
    page.click("#mask-canvas [data-clear]")
    page.click("#init-clear")


def test_hires_from_the_page(page: Any) -> None:
    page.fill("#keyword-input", "red apple")
    for field, value in (("#steps", "2"), ("#width", "32"), ("#height", "32"), ("#seed", "4")):
        page.fill(field, value)
    page.check("#hires")
    page.select_option("#hires-upscaler", "Lanczos")
    body = page.evaluate("request()")
    assert body["hires"] == {"scale": 2, "upscaler": "Lanczos", "steps": 0, "strength": 0.7}
    page.click("#generate")
    page.wait_for_selector("#result img")
    # 32 px painted, then twice as big
    sync_api.expect(page.locator("#result img").first).to_have_js_property("naturalWidth", 64)
    page.fill("#hires-scale", "8")
    page.fill("#width", "1024")
    page.fill("#height", "1024")
    page.click("#generate")  # the server refuses, before any work, what the page cannot know
    sync_api.expect(page.locator("#error")).to_contain_text("8192x8192 is over the pixel budget")
    page.uncheck("#hires")
