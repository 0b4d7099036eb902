"""POST /api/finetune on a real server: uploaded pictures train a tiny LoRA through the queue, with progress
and sample previews; a cancel leaves no file; every bad input is refused before anything is queued."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file

from keypaint.core.painter import Painter
from keypaint.core.speed.options import SpeedOptions
from keypaint.finetune import Method
from keypaint.finetune.lora import ADAPTER
from keypaint.keywords.vocabulary import Vocabulary
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_model
from keypaint.server.config import ServerConfig
from tests.server.conftest import FAST, Running, wait_for, wait_job
from tests.server.test_adapter_lists import adapter_files

COLOURS = ((200, 30, 30), (30, 160, 60), (40, 60, 220), (230, 190, 20))
FIELDS = {"token": "zqdisc", "steps": "2", "lr": "0.01", "rank": "4"}  # two steps that move the LoRA


def disc(index: int, size: int = 64) -> bytes:
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).ellipse((10, 10, size - 10, size - 10), fill=COLOURS[index % 4], outline="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def pictures(count: int = 3) -> list[tuple[str, bytes]]:
    """`count` disc pictures, the first with a caption file."""
    return [(f"disc {i}.png", disc(i)) for i in range(count)] + [("disc 0.txt", b"red disc, circle\n")]


def upload(client: httpx.Client, files: list[tuple[str, bytes]], **fields: str) -> httpx.Response:
    parts = [("pictures", (name, data, "text/plain" if name.endswith(".txt") else "image/png"))
             for name, data in files]
    return client.post("/api/finetune", files=parts, data={**FIELDS, **fields})


def events_of(client: httpx.Client, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        name = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name:
                events.append((name, json.loads(line[6:])))
    return events


def start(serve, tmp_path: Path, **changes: Any) -> Running:  # type: ignore[no-untyped-def]
    """A server whose tiny model is its own (fine-tuning adds and removes layers in it); no sample pictures
    unless asked (each paints 20 steps)."""
    home = tmp_path / "home"
    model = replace(tiny_model(ModelKind.SD1), vocabulary=Vocabulary.from_pairs([("red apple", ["fruit"])]))
    config = ServerConfig(out=tmp_path / "outputs", home=home, max_finetune_steps=400,
                          max_upload_bytes=300_000, finetune_sample_every=0)
    return serve(replace(config, **changes), painter=Painter(model, home=home))


@pytest.fixture
def site(serve, tmp_path: Path) -> Running:  # type: ignore[no-untyped-def]
    return start(serve, tmp_path)


def test_upload_trains_a_lora_through_the_queue(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    site = start(serve, tmp_path, finetune_sample_every=50)
    home = site.config.home
    assert home is not None
    with site.client() as client:
        options = client.get("/api/finetune").json()
        assert options["methods"] == [m.value for m in Method] and options["default_method"] == "auto"
        assert options["max_steps"] == 400 and options["unavailable"] is None
        form = client.get("/openapi.json").json()["paths"]["/api/finetune"]["post"]["requestBody"]
        assert "multipart/form-data" in form["content"]
        response = upload(client, pictures())
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        assert response.headers["location"] == f"/api/jobs/{job_id}"
        events = events_of(client, job_id)
        job = client.get(f"/api/jobs/{job_id}").json()
        loras = client.get("/sdapi/v1/loras").json()
        tried = client.post("/api/jobs", json={"prompt": "red disc, zqdisc", "seed": 1, **FAST,
                                               "loras": [{"name": "zqdisc", "weight": 0.8}]}).json()
        tried = wait_job(client, tried["id"])
    assert [name for name, _ in events][-1] == "done"
    progress = [data for name, data in events if name == "progress"]
    assert [p["step"] for p in progress][-1] == 2 and all(p["steps"] == 2 for p in progress)
    trained = [p for p in progress if p["step"]]  # step 0: loading and encoding the pictures
    assert all(isinstance(p["loss"], float) for p in trained) and trained[-1]["eta_s"] == 0
    previews = [p["preview"] for p in progress if "preview" in p]
    assert previews, "the sample picture of the last step is the job's preview"
    assert Image.open(io.BytesIO(base64.b64decode(previews[-1].split(",", 1)[1]))).size == (64, 64)
    assert job["kind"] == "finetune" and job["status"] == "succeeded", job
    assert job["info"]["name"] == "zqdisc" and job["info"]["kind"] == "lora" and job["info"]["steps"] == 2
    assert job["params"]["pictures"] == ["disc_0.png", "disc_1.png", "disc_2.png", "disc_0.txt"]
    assert str(home) not in json.dumps(job), "the job shows names, never the server's paths"
    assert [lora["name"] for lora in loras] == ["zqdisc"]
    assert loras[0]["metadata"]["ss_output_name"] == "zqdisc"
    weights = load_file(home / "loras" / "zqdisc.safetensors")
    assert any(k.endswith("lora_up.weight") and v.abs().max() > 0 for k, v in weights.items())
    assert tried["status"] == "succeeded", tried  # the new LoRA fits the model the server paints with
    assert ADAPTER not in (getattr(site.state.host.current.model.pipe.unet, "peft_config", None) or {})


def test_a_second_run_trains_after_a_lora_was_painted_with(site: Running) -> None:
    """Painting without LoRAs switches the loaded ones off; the next run's layers must still learn."""
    home = site.config.home
    assert home is not None
    with site.client() as client:
        first = upload(client, pictures()).json()
        assert wait_job(client, first["id"])["status"] == "succeeded"
        for loras in ([{"name": "zqdisc", "weight": 1.0}], []):
            job = client.post("/api/jobs", json={"prompt": "disc", **FAST, "loras": loras}).json()
            assert wait_job(client, job["id"])["status"] == "succeeded"
        second = upload(client, pictures(), token="zqring").json()
        assert wait_job(client, second["id"])["status"] == "succeeded"
    weights = load_file(home / "loras" / "zqring.safetensors")
    assert any(k.endswith("lora_up.weight") and v.abs().max() > 0 for k, v in weights.items())


def test_a_half_precision_model_trains_in_fp32_and_is_given_back(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """GPU servers load fp16/bf16 weights: the run casts the model to fp32 and back (bf16 runs on a CPU)."""
    site = start(serve, tmp_path)
    pipe = site.state.host.current.model.pipe
    pipe.to(dtype=torch.bfloat16)
    with site.client() as client:
        job = wait_job(client, upload(client, pictures()).json()["id"])
    assert job["status"] == "succeeded", job
    assert {m.dtype for m in (pipe.unet, pipe.vae, pipe.text_encoder)} == {torch.bfloat16}
    weights = load_file(tmp_path / "home" / "loras" / "zqdisc.safetensors")
    assert any(k.endswith("lora_up.weight") and v.abs().max() > 0 for k, v in weights.items())


def test_cancel_stops_training_and_leaves_no_file(site: Running) -> None:
    home = site.config.home
    assert home is not None
    with site.client() as client:
        job_id = upload(client, pictures(), steps="400").json()["id"]
        wait_for(lambda: (client.get(f"/api/jobs/{job_id}").json().get("progress") or {}).get("step", 0) >= 1)
        assert client.delete(f"/api/jobs/{job_id}").status_code == 202
        job = wait_job(client, job_id)
        assert client.get("/sdapi/v1/loras").json() == []
        after = client.post("/api/jobs", json={"prompt": "disc", **FAST}).json()
        assert wait_job(client, after["id"])["status"] == "succeeded"
    assert job["status"] == "cancelled" and job["info"]["steps_done"] < 400, job
    assert not (home / "loras").exists() or list((home / "loras").iterdir()) == []
    assert not (home / "finetune" / "jobs" / job_id / "run").exists()  # no checkpoints left either
    assert ADAPTER not in (getattr(site.state.host.current.model.pipe.unet, "peft_config", None) or {})


def test_bad_input_is_refused_before_anything_is_queued(site: Running) -> None:
    home = site.config.home
    assert home is not None
    adapter_files(site.state.host.current.model, home)  # a LoRA zqstyle and an embedding zqword
    noisy = io.BytesIO()
    Image.effect_noise((400, 400), 100).convert("RGB").save(noisy, format="PNG")
    cases: list[tuple[list[tuple[str, bytes]], dict[str, str], int, str]] = [
        ([("one.png", disc(0))], {}, 422, "pictures: at least 2 pictures"),
        ([*pictures(2), ("broken.png", b"not a picture")], {}, 422, "broken.png: is not a readable picture"),
        ([*pictures(2), ("notes.pdf", b"%PDF")], {}, 422, "notes.pdf: not a picture"),
        ([*pictures(2), ("disc 1.txt", b"\xff\xfe bad")], {}, 422, "disc 1.txt: captions must be UTF-8"),
        ([*pictures(2), ("lost.txt", b"caption")], {}, 422, "lost.txt: a caption without a picture"),
        (pictures(), {"token": "two words"}, 422, "token: 'two words': use 2-40 letters"),
        (pictures(), {"token": "ZQStyle"}, 409, "token: 'ZQStyle': this server already has a LoRA"),
        (pictures(), {"token": "zqword"}, 409, "token: 'zqword': this server already has an embedding"),
        (pictures(), {"token": "keypaint-lcm"}, 409, "already has a LoRA"),
        (pictures(), {"token": "Fruit"}, 409, "token: 'Fruit' is a keyword tiny-sd1 already knows"),
        (pictures(), {"method": "magic"}, 422, "method: unknown method 'magic'; this server knows auto"),
        (pictures(), {"method": "dreambooth"}, 422, "method: dreambooth needs class_prompt"),
        (pictures(), {"steps": "401"}, 422, "steps: 401 is over this server's limit of 400"),
        (pictures(), {"steps": "0"}, 422, "steps: must be a whole number within [1,"),
        (pictures(), {"rank": "0"}, 422, "rank: must be a whole number within [1, 256]"),
        (pictures(), {"lr": "2"}, 422, "lr: must be within (0, 1]"),
        ([*pictures(2), ("big.png", noisy.getvalue())], {}, 413, "request body is larger than 300000 bytes"),
    ]
    with site.client() as client:
        for files, fields, status, message in cases:
            response = upload(client, files, **fields)
            assert response.status_code == status and message in response.json()["error"], (
                message, response.status_code, response.text)
        missing = client.post("/api/finetune", files=[("pictures", ("a.png", disc(0), "image/png"))] * 2)
        assert missing.status_code == 422 and missing.json()["error"].startswith("token")
        assert client.get("/api/jobs").json()["jobs"] == []
    assert not (home / "finetune").exists(), "nothing was stored"


def test_a_server_painting_through_patched_modules_refuses_to_train(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = tiny_model(ModelKind.SD1)
    painter = Painter(model, speed=SpeedOptions(token_merging=0.5))
    site = serve(ServerConfig(out=tmp_path / "outputs", home=tmp_path / "home"), painter=painter)
    with site.client() as client:
        reason = client.get("/api/finetune").json()["unavailable"]
        response = upload(client, pictures())
        assert client.get("/api/jobs").json()["jobs"] == []
    assert "runs its model with --token-merging" in reason
    assert response.status_code == 409 and response.json()["error"] == reason
