"""Models chosen per request are checked when the request arrives: the same 422 as /sdapi/v1/options,
nothing queued; a path must be the listed file itself; paths stay private beyond loopback."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import torch

from keypaint.server.app import default_factory
from keypaint.server.config import ServerConfig
from tests.server.conftest import FAST, Running


@pytest.fixture
def hostile_home(tiny_models_home: Path) -> Path:
    """The tiny models plus a pickle and a broken file in the model folder."""
    models = tiny_models_home / "models"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, models / "pickled.ckpt")
    (models / "broken.safetensors").write_bytes(b"\xff" * 64)
    return tiny_models_home


@pytest.fixture
def models_server(serve: Callable[..., Running], config: ServerConfig, hostile_home: Path) -> Running:
    factory = default_factory(config)
    return serve(config, painter=factory("tiny-a"), factory=factory)


def error_of(response: httpx.Response, field: str) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["detail"][0]["loc"] == ["body", field]
    assert body["error"].startswith(f"{field}: ")
    return body["error"].removeprefix(f"{field}: ")


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("pickled", "pickled.ckpt is a pickle checkpoint"),
        ("pickled.ckpt [0123456789]", "keypaint serve --allow-pickle"),
        ("broken", "broken.safetensors: not a valid .safetensors file"),
        ("broken.safetensors", "more than the 104857600 allowed"),
    ],
)
def test_a_bad_model_per_request_is_refused_like_options_does(models_server: Running, name: str,
                                                              says: str) -> None:
    with models_server.client() as client:
        options = error_of(client.post("/sdapi/v1/options", json={"sd_model_checkpoint": name}),
                           "sd_model_checkpoint")
        sdapi = error_of(client.post("/sdapi/v1/txt2img", json={
            "prompt": "x", **FAST, "override_settings": {"sd_model_checkpoint": name}}),
            "override_settings.sd_model_checkpoint")
        jobs = error_of(client.post("/api/jobs", json={"keywords": ["x"], **FAST, "model": name}), "model")
        assert options == sdapi == jobs and says in options
        assert "pass --allow-pickle" not in options  # a client cannot pass anything to the server
        assert client.get("/api/jobs").json()["jobs"] == []  # nothing was queued
        assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("tiny-a")


def test_a_path_must_be_the_listed_file(models_server: Running, tmp_path: Path) -> None:
    with models_server.client() as client:
        listed = {m["model_name"]: m["filename"] for m in client.get("/sdapi/v1/sd-models").json()}
        assert Path(listed["tiny-b"]).is_absolute()  # on loopback, as A1111 shows them
        for elsewhere in (str(tmp_path / "tiny-b"), "/any/dir/tiny-b.safetensors", "other/tiny-b"):
            message = error_of(client.post("/api/jobs", json={"keywords": ["x"], **FAST, "model": elsewhere}),
                               "model")
            assert message.startswith("unknown model")
        made = client.post("/sdapi/v1/txt2img", json={
            "prompt": "x", **FAST, "override_settings": {"sd_model_checkpoint": listed["tiny-b"]}})
        assert made.status_code == 200 and json.loads(made.json()["info"])["sd_model_name"] == "tiny-b"


def test_model_paths_stay_private_beyond_loopback(serve: Callable[..., Running], config: ServerConfig,
                                                  hostile_home: Path) -> None:
    token = "private-paths-token"
    config = replace(config, host="0.0.0.0", token=token)
    factory = default_factory(config)
    running = serve(config, painter=factory("tiny-a"), factory=factory)
    with running.client(headers={"Authorization": f"Bearer {token}"}) as client:
        models = client.get("/sdapi/v1/sd-models").json()
        assert {"tiny-a", "tiny-b", "broken", "pickled"} <= {m["model_name"] for m in models}
        assert all("/" not in m["filename"] and str(hostile_home) not in m["title"] for m in models)
        by_file = next(m["filename"] for m in models if m["model_name"] == "tiny-b")
        assert client.post("/sdapi/v1/options", json={"sd_model_checkpoint": by_file}).status_code == 200
