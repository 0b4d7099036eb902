"""The web page in a real browser (Playwright driving Debian's chromium): type keywords, generate with
a tiny model, watch the picture appear, cancel, reload and find the gallery; the result's buttons, the
error line, the layout at a phone's and a desktop's width, the figure lightbox, the favicon. Screenshots
go to tmp_path and are checked to show a drawn page."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
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

DESKTOP = {"viewport": {"width": 1200, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 1, "is_mobile": True,
         "has_touch": True}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@contextmanager
def open_page(browser: Any, site: Running, device: dict[str, Any]) -> Iterator[Any]:
    """A fresh page that may only talk to the keypaint server; anything else is recorded and refused."""
    context = browser.new_context(**device, accept_downloads=True)
    page = context.new_page()
    outside: list[str] = []

    def only_loopback(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:")):
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


@pytest.fixture
def page(browser: Any, site: Running) -> Iterator[Any]:
    with open_page(browser, site, DESKTOP) as page:
        yield page


@pytest.fixture
def phone(browser: Any, site: Running) -> Iterator[Any]:
    with open_page(browser, site, PHONE) as page:
        yield page


def screenshot(page: Any, path: Path, *, full_page: bool = False) -> Image.Image:
    """A screenshot at `path`, checked to be of the whole viewport and to show a drawn page."""
    page.screenshot(path=str(path), full_page=full_page)
    image = Image.open(path).convert("RGB")
    viewport = page.viewport_size
    assert image.width == viewport["width"]
    assert image.height == viewport["height"] if not full_page else image.height >= viewport["height"]
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 100, "a nearly blank screenshot"
    assert np.asarray(image.convert("L"), dtype=np.float32).std() > 8, "a nearly blank screenshot"
    return image


def page_width(page: Any) -> int:
    return int(page.evaluate("document.scrollingElement.scrollWidth"))


def watch_preview(page: Any) -> None:
    """Remember in window.previewShown whether the live preview is ever shown (the result replaces it)."""
    page.evaluate("""() => {
        const preview = document.getElementById("preview");
        window.previewShown = false;
        new MutationObserver(() => { if (!preview.hidden) window.previewShown = true; })
            .observe(preview, { attributes: true });
    }""")


def generate(page: Any, keywords: str = "red apple", *, steps: int = 2, seed: int = 9) -> None:
    page.fill("#keyword-input", keywords)
    page.press("#keyword-input", "Enter")
    fill_settings(page, steps=steps, seed=seed)
    page.click("#generate")
    page.wait_for_selector("#result img")
    sync_api.expect(page.locator("#status")).to_have_text("done")


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
    watch_preview(page)
    page.click("#generate")
    page.wait_for_selector("#result img")
    sync_api.expect(page.locator("#status")).to_have_text("done")
    assert page.locator("#result img").evaluate("img => img.complete && img.naturalWidth") == 64
    assert page.evaluate("window.previewShown")  # the live preview was shown while it ran
    sync_api.expect(page.locator("#preview")).to_be_hidden()  # and the result took its place
    sync_api.expect(page.locator("#live img:visible")).to_have_count(1)  # the picture shows once
    sync_api.expect(page.locator("#gallery .thumb")).to_have_count(1)  # the gallery refreshes after "done"
    screenshot(page, tmp_path / "generated.png")
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
    sync_api.expect(page.locator("#status")).to_have_text("cancelled", timeout=10_000)
    sync_api.expect(page.locator("#cancel")).to_be_disabled()
    screenshot(page, tmp_path / "cancelled.png")


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
    screenshot(page, tmp_path / "details.png")
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


def test_the_result_can_be_downloaded_reused_and_sent_to_img2img(page: Any, site: Running,
                                                                    tmp_path: Path) -> None:
    generate(page, "blue kite", seed=-1)
    with site.client() as client:
        image = client.get("/api/images", params={"limit": 1}).json()["images"][0]
        png = client.get(image["url"]).content
    card = page.locator("#result .result-card")
    sync_api.expect(card).to_have_count(1)
    sync_api.expect(card.locator("figcaption")).to_have_text(f"seed {image['seed']}, 64\u00d764")
    screenshot(page, tmp_path / "result.png")
    with page.expect_download() as download:
        card.locator(".download").click()  # the download link has the picture itself
    saved = tmp_path / "downloaded.png"
    download.value.save_as(saved)
    assert download.value.suggested_filename == image["url"].split("/")[-1]
    assert saved.read_bytes() == png
    assert page.input_value("#seed") == "-1"
    card.locator(".reuse-seed").click()
    assert page.input_value("#seed") == str(image["seed"])
    sync_api.expect(page.locator("#init-preview")).to_be_hidden()
    card.locator(".to-img2img").click()
    sync_api.expect(page.locator("#init-preview")).to_be_visible()
    init = page.locator("#init-preview")
    assert init.get_attribute("src").startswith("data:image/png;base64,")
    page.wait_for_function("document.getElementById('init-preview').naturalWidth === 64")
    screenshot(page, tmp_path / "sent-to-img2img.png")
    page.click("#generate")  # the next run is img2img from the picture, on the same seed
    sync_api.expect(card).not_to_have_attribute("data-id", str(image["id"]))
    sync_api.expect(card).to_have_count(1)
    sync_api.expect(page.locator("#status")).to_have_text("done")
    with site.client() as client:
        newest = client.get("/api/images", params={"limit": 1}).json()["images"][0]
    assert newest["id"] != image["id"] and newest["seed"] == image["seed"]
    assert "Denoising strength: 0.75" in newest["infotext"]
    page.click("#init-clear")
    # the gallery's details dialog has the same two buttons
    page.fill("#seed", "-1")
    page.locator("#gallery .thumb").nth(1).click()
    page.click("#details-seed")
    sync_api.expect(page.locator("#details")).to_be_hidden()
    assert page.input_value("#seed") == str(image["seed"])
    page.locator("#gallery .thumb").first.click()
    page.click("#details-img2img")
    sync_api.expect(page.locator("#init-preview")).to_be_visible()


def test_an_error_goes_once_its_cause_is_fixed(page: Any, tmp_path: Path) -> None:
    page.fill("#keyword-input", "pear")
    fill_settings(page, steps=1001)
    page.click("#generate")
    error = page.locator("#error")
    sync_api.expect(error).to_have_text(re.compile(r"^steps: .*1000"))
    page.fill("#cfg", "6")  # another field: the message still stands
    sync_api.expect(error).to_have_text(re.compile(r"^steps: "))
    screenshot(page, tmp_path / "error.png")
    page.fill("#steps", "2")  # fixed: the message goes
    sync_api.expect(error).to_have_text("")
    page.fill("#width", "2048")
    page.fill("#height", "2048")
    page.click("#generate")
    sync_api.expect(error).to_have_text(re.compile(r"^size: .*pixel budget"))
    page.fill("#height", "64")
    page.fill("#width", "64")
    sync_api.expect(error).to_have_text("")
    # a message that names no field (here a full queue) stays until a run succeeds
    page.route("**/api/jobs", lambda route: route.fulfill(
        status=429, content_type="application/json", body='{"error": "the queue is full; try again"}'))
    page.click("#generate")
    sync_api.expect(error).to_have_text("the queue is full; try again")
    page.fill("#cfg", "6")
    sync_api.expect(error).to_have_text("the queue is full; try again")
    page.unroute("**/api/jobs")
    page.click("#generate")
    page.wait_for_selector("#result img")
    sync_api.expect(page.locator("#status")).to_have_text("done")
    sync_api.expect(error).to_have_text("")
    # the same on the How it works tab
    page.click("#tab-explain")
    page.select_option("#explain-view", "forward")
    page.fill("#explain-keywords", "pear")
    page.fill("#explain-timesteps", "0, 5000")
    page.click("#explain-show")
    explain_error = page.locator("#explain-error")
    sync_api.expect(explain_error).to_have_text(re.compile("^timesteps: "))
    page.fill("#explain-seed", "4")
    sync_api.expect(explain_error).to_have_text(re.compile("^timesteps: "))
    page.fill("#explain-timesteps", "0, 500")
    sync_api.expect(explain_error).to_have_text("")


def layout_problems(page: Any) -> list[str]:
    """What is laid out badly on the paint tab: the sampler's name cut, the expand checkbox off its text."""
    return page.evaluate("""() => {
        const problems = [];
        const select = document.getElementById("sampler");
        const style = getComputedStyle(select);
        const ctx = document.createElement("canvas").getContext("2d");
        ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
        for (const option of select.options) {  // every sampler's name fits beside the arrow
            const need = ctx.measureText(option.text).width + 28;
            if (need > select.clientWidth) problems.push(`"${option.text}": ${need} > ${select.clientWidth}`);
        }
        const box = document.getElementById("expand").getBoundingClientRect();
        const label = document.getElementById("expand").closest("label").getBoundingClientRect();
        const middle = box.top + box.height / 2;
        if (label.height > 2 * box.height + 8) problems.push(`expand label wraps: ${label.height}`);
        if (middle < label.top || middle > label.bottom) problems.push("expand checkbox off its text");
        return problems;
    }""")


def test_desktop_layout(page: Any, tmp_path: Path) -> None:
    generate(page, "green tree")
    assert layout_problems(page) == []
    form, live = page.locator("#form").bounding_box(), page.locator("#live").bounding_box()
    assert live["x"] >= form["x"] + form["width"]  # the result beside the form
    assert page_width(page) <= 1200
    screenshot(page, tmp_path / "desktop.png")
    screenshot(page, tmp_path / "desktop-full.png", full_page=True)


def test_phone_width_has_no_sideways_scroll(phone: Any, tmp_path: Path) -> None:
    page = phone
    assert page_width(page) <= 390
    page.fill("#keyword-input", "a rather long keyword that must wrap, and another, and more")
    page.press("#keyword-input", "Enter")
    generate(page, "yellow star")
    assert layout_problems(page) == []
    assert page_width(page) <= 390
    screenshot(page, tmp_path / "phone.png")
    screenshot(page, tmp_path / "phone-full.png", full_page=True)
    page.locator("#result .thumb").first.click()  # the details dialog
    sync_api.expect(page.locator("#details")).to_be_visible()
    assert page_width(page) <= 390
    screenshot(page, tmp_path / "phone-details.png")
    page.click("#details-close")
    page.click("#tab-explain")
    page.click("#explain-show")  # schedules: no model run
    page.wait_for_selector("#explain-figure[data-loaded=true]", timeout=120_000)
    assert page_width(page) <= 390
    screenshot(page, tmp_path / "phone-explain.png")
    page.click("#explain-enlarge")
    sync_api.expect(page.locator("#lightbox")).to_be_visible()
    screenshot(page, tmp_path / "phone-lightbox.png")
    page.click("#lightbox-size")  # actual size: scrolls inside the lightbox, not the page
    assert page_width(page) <= 390
    frame = page.locator("#lightbox-frame").evaluate("f => [f.scrollWidth, f.clientWidth]")
    assert frame[0] > frame[1]
    screenshot(page, tmp_path / "phone-lightbox-actual.png")


def test_a_figure_can_be_enlarged(page: Any, tmp_path: Path) -> None:
    page.click("#tab-explain")
    sync_api.expect(page.locator("#explain-enlarge")).to_be_hidden()  # nothing to enlarge yet
    page.click("#explain-show")
    page.wait_for_selector("#explain-figure[data-loaded=true]", timeout=120_000)
    shown = page.locator("#explain-figure").bounding_box()
    page.click("#explain-figure")
    lightbox = page.locator("#lightbox")
    sync_api.expect(lightbox).to_be_visible()
    page.wait_for_function("document.getElementById('lightbox-image').complete")
    big = page.locator("#lightbox-image").evaluate(
        "img => [img.naturalWidth, img.getBoundingClientRect().width, img.getBoundingClientRect().height]")
    natural = page.locator("#explain-figure").evaluate("img => img.naturalWidth")
    assert big[0] == natural > 0
    assert big[1] > shown["width"] and big[2] > shown["height"]  # larger than on the page
    screenshot(page, tmp_path / "lightbox.png")
    page.click("#lightbox-size")
    sync_api.expect(page.locator("#lightbox-size")).to_have_text("Fit to window")
    actual = page.locator("#lightbox-image").evaluate("img => img.getBoundingClientRect().width")
    assert abs(actual - natural) < 1
    page.keyboard.press("Escape")
    sync_api.expect(lightbox).to_be_hidden()
    page.click("#explain-enlarge")  # by keyboard too: the figure is a button
    sync_api.expect(lightbox).to_be_visible()
    page.click("#lightbox-close")
    sync_api.expect(lightbox).to_be_hidden()


def test_the_page_has_a_favicon(page: Any, site: Running) -> None:
    href = page.locator("link[rel=icon]").get_attribute("href")
    with site.client() as client:
        response = client.get(href)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.text.lstrip().startswith("<svg")
    drawn = page.evaluate("""async (href) => {
        const img = new Image();
        img.src = href;
        await img.decode();
        return img.naturalWidth;
    }""", href)
    assert drawn > 0


def test_a_keyword_chip_shows_what_it_was_mapped_to(page: Any, tmp_path: Path) -> None:
    """Data-driven: the chip shows the mapping POST /api/keywords reports (here answered by the test)."""
    def keywords(route: Any) -> None:
        route.fulfill(status=200, content_type="application/json", body=(
            '{"keywords": ["cheeseburger", "red apple"], "tokens": 4, "capacity": 75,'
            ' "mapped": {"cheeseburger": "hamburger"}}'))

    page.route("**/api/keywords", keywords)
    page.fill("#keyword-input", "cheeseburger, red apple")
    page.press("#keyword-input", "Enter")
    chips = page.locator("#chips .chip")
    sync_api.expect(chips.nth(0).locator(".mapped")).to_have_text("\u2192 hamburger")
    sync_api.expect(chips.nth(1).locator(".mapped")).to_have_count(0)
    assert chips.nth(0).get_attribute("data-mapped") == "hamburger"
    assert chips.nth(0).locator(".text").inner_text() == "cheeseburger"  # the keyword itself is kept
    screenshot(page, tmp_path / "mapped-chip.png")
    page.uncheck("#expand")  # no expansion, no mapping
    sync_api.expect(chips.nth(0).locator(".mapped")).to_have_count(0)
    page.check("#expand")
    sync_api.expect(chips.nth(0).locator(".mapped")).to_have_count(1)
