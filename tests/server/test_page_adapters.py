"""The page's LoRA and embedding pickers in a real browser: chosen from the server's folders, sent, used."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keypaint.core.painter import Painter
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_model
from keypaint.server.config import ServerConfig
from tests.server.conftest import ARGS, CHROMIUM, Running, start_server
from tests.server.test_adapter_lists import adapter_files

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="browser tests need Debian's chromium: apt-get install chromium"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need `pip install playwright`")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Running]:
    home = tmp_path / "home"
    model = tiny_model(ModelKind.SD1)
    adapter_files(model, home)
    running = start_server(
        ServerConfig(out=tmp_path / "outputs", home=home), painter=Painter(model, home=home)
    )
    yield running
    running.stop()


def test_pick_a_lora_and_an_embedding_and_generate(site: Running) -> None:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page: Any = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(site.url)
        page.wait_for_selector("body[data-ready=true]")
        page.fill("#keyword-input", "red disc")
        page.press("#keyword-input", "Enter")
        page.select_option("#lora", "zqstyle")
        page.fill("#lora-weight", "3")
        page.click("#lora-add")
        sync_api.expect(page.locator("#error")).to_have_text("LoRA weight must be within [-2, 2]")
        page.fill("#lora-weight", "0.7")
        page.click("#lora-add")
        page.select_option("#embedding", "zqword")
        page.click("#embedding-add")  # also adds its word to the keywords
        assert page.locator("#chips .chip .text").all_inner_texts() == ["red disc", "zqword"]
        assert page.locator("#adapter-chips .chip .text").all_inner_texts() == [
            "LoRA zqstyle: 0.7",
            "embedding zqword",
        ]
        for field, value in (("#steps", "2"), ("#width", "64"), ("#height", "64"), ("#seed", "3")):
            page.fill(field, value)
        page.click("#generate")
        page.wait_for_selector("#result img")
        sync_api.expect(page.locator("#status")).to_have_text("done")
        browser.close()
    assert errors == []
    with site.client() as client:
        image = client.get("/api/images").json()["images"][0]
    assert image["request"]["loras"] == [{"name": "zqstyle", "weight": 0.7}]
    assert image["request"]["embeddings"] == ["zqword"]
    assert 'Lora weights: "zqstyle: 0.7"' in image["infotext"] and 'TI hashes: "zqword: ' in image["infotext"]
