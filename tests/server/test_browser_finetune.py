"""The page's "Learn a style or character" section in a real browser: pictures chosen and dropped, a bad
request shown inline, a tiny LoRA trained through the queue, then "Try it" and a picture painted with it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keypaint.core.painter import Painter
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_model
from keypaint.server.config import ServerConfig
from tests.server.conftest import ARGS, CHROMIUM, Running, start_server
from tests.server.test_finetune_api import disc

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="browser tests need Debian's chromium: apt-get install chromium"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need `pip install playwright`")

# a picture dropped on the section the way a file manager drops one: a DataTransfer holding a File
DROP = """([name, bytes]) => {
  const data = new DataTransfer();
  data.items.add(new File([new Uint8Array(bytes)], name, { type: "image/png" }));
  const zone = document.getElementById("learn-drop");
  for (const type of ["dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
  }
}"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Running]:
    home = tmp_path / "home"
    model = tiny_model(ModelKind.SD1)  # its own: fine-tuning adds and removes layers in it
    config = ServerConfig(out=tmp_path / "outputs", home=home)
    running = start_server(config, painter=Painter(model, home=home))
    yield running
    running.stop()


def test_learn_a_style_from_the_page_and_try_it(site: Running) -> None:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page: Any = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(site.url)
        page.wait_for_selector("#learn-section[data-ready=true]")
        assert page.locator("#learn-method").input_value() == "auto"
        page.set_input_files("#learn-files", [
            {"name": "disc0.png", "mimeType": "image/png", "buffer": disc(0)},
            {"name": "disc0.txt", "mimeType": "text/plain", "buffer": b"red disc"},
        ])
        page.fill("#learn-token", "zqdisc")
        page.fill("#learn-steps", "2")
        page.click("#learn-train")  # one picture: the server's message, inline
        sync_api.expect(page.locator("#learn-error")).to_have_text(
            "pictures: at least 2 pictures (5-20 work best); got 1")
        page.evaluate(DROP, ["disc1.png", list(disc(1))])
        page.evaluate(DROP, ["disc2.png", list(disc(2))])
        assert page.locator("#learn-thumbs img").count() == 3
        sync_api.expect(page.locator("#learn-count")).to_have_text("3 pictures, 1 caption")
        sync_api.expect(page.locator("#learn-error")).to_have_text("")  # its cause is fixed
        page.click("#learn-train")
        sync_api.expect(page.locator("#learn-status")).to_have_text(
            re.compile(r"^done: LoRA zqdisc \(2 steps"), timeout=120_000)
        assert page.locator("#learn-sample").is_visible()  # the sample painted at the last step
        page.click("#learn-try")
        assert page.locator("#chips .chip .text").all_inner_texts() == ["zqdisc"]
        assert page.locator("#adapter-chips .chip .text").all_inner_texts() == ["LoRA zqdisc: 0.8"]
        for field, value in (("#steps", "2"), ("#width", "64"), ("#height", "64")):
            page.fill(field, value)
        page.click("#generate")
        page.wait_for_selector("#result img")
        sync_api.expect(page.locator("#status")).to_have_text("done")
        browser.close()
    assert errors == []
    with site.client() as client:
        image = client.get("/api/images").json()["images"][0]
    assert image["request"]["loras"] == [{"name": "zqdisc", "weight": 0.8}]
    assert "Lora hashes: " in image["infotext"]
