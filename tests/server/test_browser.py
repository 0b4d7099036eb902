"""The web page in a real browser (Playwright driving Debian's chromium): type keywords, generate with
a tiny model, watch the picture appear, cancel, reload and find the gallery. Screenshots go to tmp_path."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from tests.server.conftest import ARGS, CHROMIUM, FAST, Running, wait_job

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="browser tests need Debian's chromium: apt-get install chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need `pip install playwright`")




@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, site: Running) -> Iterator[Any]:
    """A fresh page that may only talk to the keypaint server; anything else is recorded and refused."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    page = context.new_page()
    outside: list[str] = []

    def only_loopback(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith("data:"):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", only_loopback)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(site.url)
    page.wait_for_selector("body[data-ready=true]")
    yield page
    assert outside == [], f"the page tried to fetch from outside: {outside}"
    assert errors == [], f"JavaScript errors: {errors}"
    context.close()


def fill_settings(page: Any, steps: int = 2, seed: int = 9) -> None:
    page.fill("#steps", str(steps))
    page.fill("#width", "64")
    page.fill("#height", "64")
    page.fill("#seed", str(seed))


def test_type_keywords_and_generate(page: Any, site: Running, tmp_path: Path) -> None:
    page.fill("#keyword-input", "red apple")
    page.press("#keyword-input", "Enter")
    page.type("#keyword-input", "fruit,")
    page.locator("#chips .chip").nth(1).locator(".weight").click()  # fruit: 1.0 -> 1.1
    page.fill("#negative-input", "blurry")
    page.press("#negative-input", "Enter")
    assert page.locator("#chips .chip .text").all_inner_texts() == ["red apple", "fruit"]
    page.select_option("#style", "emoji")
    fill_settings(page)
    assert page.is_checked("#expand")  # keyword expansion is on unless turned off
    page.uncheck("#expand")
    page.click("#generate")
    page.wait_for_selector("#result img")
    sync_api.expect(page.locator("#status")).to_have_text("done")
    assert page.locator("#result img").evaluate("img => img.complete && img.naturalWidth") == 64
    sync_api.expect(page.locator("#preview")).to_be_visible()  # the live preview was shown
    sync_api.expect(page.locator("#gallery .thumb")).to_have_count(1)  # the gallery refreshes after "done"
    page.screenshot(path=str(tmp_path / "generated.png"))
    assert Image.open(tmp_path / "generated.png").size == (1200, 900)
    with site.client() as client:
        image = client.get("/api/images").json()["images"][0]
    assert image["request"]["keywords"] == ["red apple", "(fruit:1.1)"]
    assert image["request"]["negative_keywords"] == ["blurry"] and image["seed"] == 9
    assert image["params"]["prompt"].startswith("red apple, (fruit:1.1), emoji")
    assert image["request"]["expand_keywords"] is False and image["params"]["expand_keywords"] is False


def test_cancel_a_running_job(page: Any, tmp_path: Path) -> None:
    page.fill("#keyword-input", "never finished")
    fill_settings(page, steps=1000)
    page.click("#generate")
    sync_api.expect(page.locator("#status")).to_have_text(re.compile(r"^running: step \d+/1000"))
    page.click("#cancel")
    sync_api.expect(page.locator("#status")).to_have_text(re.compile("^cancelled"), timeout=10_000)
    sync_api.expect(page.locator("#cancel")).to_be_disabled()
    page.screenshot(path=str(tmp_path / "cancelled.png"))


def test_img2img_from_a_file(page: Any, tmp_path: Path) -> None:
    Image.new("RGB", (64, 64), (30, 160, 60)).save(tmp_path / "init.png")
    page.fill("#keyword-input", "green square")
    fill_settings(page)
    page.set_input_files("#init-file", str(tmp_path / "init.png"))
    page.wait_for_selector("#init-preview:not([hidden])")
    page.click("#generate")
    page.wait_for_selector("#result img")
    sync_api.expect(page.locator("#status")).to_have_text("done")


def test_reload_finds_the_gallery_and_reuses_settings(page: Any, site: Running, tmp_path: Path) -> None:
    with site.client() as client:
        job = client.post("/api/jobs", json={"keywords": ["pear", "(gold:1.2)"], "style": "watercolor",
                                              "seed": 77, "sampler": "Euler a", **FAST}).json()
        wait_job(client, job["id"])
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    thumbs = page.locator("#gallery .thumb")
    sync_api.expect(thumbs.first).to_be_visible()  # the gallery loads after the page is ready
    thumbs.first.click()
    sync_api.expect(page.locator("#details")).to_be_visible()
    assert "Seed: 77" in page.inner_text("#details-text")
    page.screenshot(path=str(tmp_path / "details.png"))
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename.endswith("-77.png")
    page.click("#use-again")
    sync_api.expect(page.locator("#chips .chip .text")).to_have_text(["pear", "gold"])
    sync_api.expect(page.locator("#chips .chip .weight").nth(1)).to_have_text("1.2")
    assert page.input_value("#seed") == "77" and page.input_value("#style") == "watercolor"
    assert page.input_value("#sampler") == "Euler a" and page.is_checked("#expand")
    page.click("#generate")  # the same settings make the same picture again
    page.wait_for_selector("#result img")
    with site.client() as client:
        newest, original = client.get("/api/images", params={"limit": 2}).json()["images"]
    assert newest["id"] != original["id"] and newest["params"] == original["params"]
    # the same picture up to the invisible provenance watermark, which differs per picture
    difference = np.abs(pixels(site, newest["url"]) - pixels(site, original["url"]))
    assert difference.mean() < 2.0, difference.mean()


def pixels(site: Running, url: str) -> np.ndarray:
    with site.client() as client:
        return np.asarray(Image.open(io.BytesIO(client.get(url).content)).convert("RGB"), dtype=np.float32)
