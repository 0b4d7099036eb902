"""The "How it works" tab: POST /api/explain/{view} on a real server with a tiny model (2 steps, 64 px),
its 422s before any compute, and the tab in a real browser (Playwright driving Debian's chromium)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from keypaint.server.config import ServerConfig
from tests.server.conftest import ARGS, CHROMIUM, FAST, Running, png_b64, wait_for

BASE = {"keywords": ["red apple", "fruit"], "seed": 3, **FAST}




@pytest.fixture
def client(site: Running) -> Iterator[httpx.Client]:
    with site.client(timeout=120) as client:
        yield client


def figure(response: httpx.Response, kind: str = "PNG") -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"image/{kind.lower()}"
    assert response.headers["cache-control"] == "no-store"
    image = Image.open(io.BytesIO(response.content))
    image.load()
    assert image.format == kind
    return image


@pytest.mark.parametrize(("view", "extra", "min_size"), [
    ("schedules", {}, (600, 200)),
    ("forward", {"timesteps": [0, 500, 1000]}, (200, 150)),
    ("reverse", {}, (200, 250)),
    ("compare", {"samplers": ["DDIM", "Euler"], "step_counts": [1, 2]}, (200, 200)),
    ("guidance", {"scales": [1, 4]}, (200, 100)),
    ("attention", {"attention_keywords": ["apple"]}, (200, 100)),
    ("latent", {}, (300, 100)),
])
def test_each_view_answers_a_figure(client: httpx.Client, view: str, extra: dict[str, Any],
                                    min_size: tuple[int, int]) -> None:
    image = figure(client.post(f"/api/explain/{view}", json={**BASE, **extra}))
    assert image.width >= min_size[0] and image.height >= min_size[1], image.size
    assert image.width <= 4000 and image.height <= 4000
    colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50  # a drawn figure, not a blank canvas


def test_forward_of_an_uploaded_picture_and_the_seed_header(client: httpx.Client) -> None:
    body = {"image": png_b64((64, 64)), "timesteps": [0, 1000], "seed": 5, **FAST}
    response = client.post("/api/explain/forward", json=body)
    figure(response)
    assert response.headers["x-keypaint-seed"] == "5"
    assert "t = 0, 1000" in response.headers["x-keypaint-caption"]


def test_reverse_animation_is_a_gif_with_a_frame_per_step(client: httpx.Client) -> None:
    response = client.post("/api/explain/reverse", json={**BASE, "animation": True})
    image = figure(response, "GIF")
    assert image.n_frames == FAST["steps"] + 1  # one frame a U-Net call, and the final picture
    same = client.post("/api/explain/reverse", json={**BASE, "animation": True})
    assert same.content == response.content  # the seed fixes the whole chain


def test_latent_caption_reports_compression(client: httpx.Client) -> None:
    response = client.post("/api/explain/latent", json=BASE)
    figure(response)
    assert "fewer numbers" in response.headers["x-keypaint-caption"]
    assert "PSNR" in response.headers["x-keypaint-caption"]
    ratio = response.headers["x-keypaint-caption"].split("costs ")[1].split("x fewer FLOPs")[0]
    assert float(ratio.replace(",", "")) > 10  # 64 px: the pixel-space U-Net works on 64x more positions


@pytest.mark.parametrize(("view", "body", "field"), [
    ("forward", {**BASE, "timesteps": [0, 1001]}, "timesteps"),
    ("forward", {**BASE, "timesteps": [-1]}, "timesteps"),
    ("forward", {**BASE, "timesteps": []}, "timesteps"),
    ("forward", {**FAST}, "keywords"),
    ("forward", {"image": "not a picture", **FAST}, "image"),
    ("reverse", {**BASE, "image": png_b64()}, "image"),
    ("reverse", {**BASE, "steps": 0}, "steps"),
    ("reverse", {**BASE, "steps": 51}, "steps"),
    ("reverse", {**BASE, "sampler": "no such sampler"}, "sampler"),
    ("reverse", {**BASE, "width": 63}, "width"),
    ("reverse", {**BASE, "surprise": 1}, "surprise"),
    ("attention", {**BASE, "attention_keywords": ["banana"]}, "attention_keywords"),
    ("compare", {**BASE, "samplers": ["DDIM", "nope"]}, "samplers"),
    ("compare", {**BASE, "samplers": ["DDIM"], "step_counts": [2, 60]}, "step_counts"),
    ("compare", {**BASE, "samplers": ["DDIM", "Euler", "DDPM"], "step_counts": [1, 2, 3, 4, 5]},
     "step_counts"),
    ("guidance", {**BASE, "scales": [1, -2]}, "scales"),
    ("guidance", {**BASE, "scales": list(range(13))}, "scales"),
])
def test_bad_input_is_a_422_naming_the_field(client: httpx.Client, view: str, body: dict[str, Any],
                                             field: str) -> None:
    response = client.post(f"/api/explain/{view}", json=body)
    assert response.status_code == 422, response.text
    data = response.json()
    assert data["error"].startswith(f"{field}:"), data
    assert data["detail"][0]["loc"][-1] == field


def test_unknown_view_is_a_422(client: httpx.Client) -> None:
    response = client.post("/api/explain/nonsense", json=BASE)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "view"]


def test_pixel_step_budget_applies(serve: Any, tmp_path: Path) -> None:
    running = serve(ServerConfig(out=tmp_path / "outputs", max_pixel_steps=64 * 64 * 3))
    with running.client() as client:
        response = client.post("/api/explain/guidance", json={**BASE, "scales": [1, 2]})  # 2 x 2 steps
        assert response.status_code == 422 and response.json()["error"].startswith("steps:")
        figure(client.post("/api/explain/guidance", json={**BASE, "scales": [1]}))


def test_the_guard_covers_explain(serve: Any, tmp_path: Path) -> None:
    running = serve(ServerConfig(out=tmp_path / "outputs", token="explain-tab-s3cret"))
    with running.client() as client:
        assert client.post("/api/explain/schedules", json={}).status_code == 401
        bearer = {"Authorization": "Bearer explain-tab-s3cret"}
        foreign = {**bearer, "Origin": "http://evil.example"}
        assert client.post("/api/explain/schedules", json={}, headers=foreign).status_code == 403
        figure(client.post("/api/explain/schedules", json={}, headers=bearer))


def test_a_figure_waits_for_the_model_and_comes_one_at_a_time(site: Running, client: httpx.Client) -> None:
    answers: list[httpx.Response] = []

    def ask() -> None:  # a 429 here means a schedules request below had the slot; ask again
        while (response := client.post("/api/explain/reverse", json=BASE)).status_code == 429:
            time.sleep(0.05)
        answers.append(response)

    figure(client.post("/api/explain/schedules", json={}))  # warm: matplotlib loaded
    with site.state.host.use(None):  # as the worker holds it while a job runs
        asker = threading.Thread(target=ask, daemon=True)
        asker.start()

        def refused() -> bool:  # once the reverse figure holds the slot, a second is told to come back
            response = client.post("/api/explain/schedules", json={})
            return response.status_code == 429 and response.headers["retry-after"] == "5"

        wait_for(refused, timeout=30)
        time.sleep(0.5)
        assert answers == []  # still waiting for the model
    asker.join(60)
    figure(answers[0])
    figure(client.post("/api/explain/schedules", json={}))


def test_the_view_list(client: httpx.Client) -> None:
    data = client.get("/api/explain").json()
    assert data["views"] == ["schedules", "forward", "reverse", "compare", "guidance", "attention", "latent"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="browser tests need Debian's chromium")
def test_the_tab_in_a_browser(site: Running, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        outside: list[str] = []
        errors: list[str] = []

        def only_loopback(route: Any) -> None:
            if urlsplit(route.request.url).hostname == "127.0.0.1" or route.request.url.startswith(("data:",
                                                                                                   "blob:")):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_loopback)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(site.url)
        page.wait_for_selector("body[data-ready=true]")
        assert page.locator("#explain-tab").is_hidden()
        page.click("#tab-explain")
        assert page.locator("#explain-tab").is_visible() and page.locator("#form").is_hidden()
        page.select_option("#explain-view", "forward")
        page.fill("#explain-keywords", "red apple, fruit")
        page.fill("#explain-seed", "4")
        page.fill("#explain-steps", "2")
        page.fill("#explain-size", "64")
        page.fill("#explain-timesteps", "0, 300, 1000")
        page.click("#explain-show")
        page.wait_for_selector("#explain-figure[data-loaded=true]", timeout=120_000)
        width = page.locator("#explain-figure").evaluate("img => img.complete && img.naturalWidth")
        assert width > 200
        sync_api.expect(page.locator("#explain-caption")).to_contain_text("seed 4")
        page.screenshot(path=str(tmp_path / "explain-forward.png"))
        assert Image.open(tmp_path / "explain-forward.png").size == (1200, 900)
        page.fill("#explain-timesteps", "0, 5000")  # a bad value shows the server's message
        page.click("#explain-show")
        sync_api.expect(page.locator("#explain-error")).to_contain_text("timesteps")
        page.click("#tab-paint")
        assert page.locator("#form").is_visible()
        browser.close()
        assert outside == [] and errors == []
