"""POST /api/keywords with the built-in model: keywords, token count, and what each found by meaning."""

from __future__ import annotations

from collections.abc import Callable

from keypaint.builtin import load_builtin
from keypaint.core.painter import Painter
from keypaint.server.config import ServerConfig
from tests.server.conftest import Running


def test_keywords_report_the_label_a_word_found_by_meaning(serve: Callable[..., Running],
                                                           config: ServerConfig) -> None:
    server = serve(config, painter=Painter(load_builtin()))
    with server.client() as client:
        answer = client.post("/api/keywords", json={"prompt": "cheeseburger, red apple, noto style"}).json()
        plain = client.post("/api/keywords", json={"prompt": "red apple"}).json()
    assert answer["keywords"] == ["cheeseburger", "red apple", "noto style"]
    assert answer["tokens"] > 0 and answer["capacity"] > 0
    assert list(answer["mapped"]) == ["cheeseburger"]  # exact labels and styles are not "mapped"
    assert answer["mapped"]["cheeseburger"]["label"] == "hamburger"
    assert 0.6 <= answer["mapped"]["cheeseburger"]["score"] <= 1
    assert plain["mapped"] == {}
