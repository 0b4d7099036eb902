"""keypaint's job API: queue at once, follow by events, cancel, a bounded queue, failures that stay local."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace

import httpx
import pytest
import torch
from PIL import Image

from keypaint.core.painter import Painter
from keypaint.server.config import ServerConfig
from tests.server.conftest import FAST, Running, wait_for, wait_job

LONG = {"keywords": ["slow"], "steps": 1000, "width": 64, "height": 64}  # runs until cancelled


def test_job_answers_at_once_and_streams_progress(server: Running) -> None:
    with server.client() as client:
        response = client.post("/api/jobs", json={"keywords": ["red apple", "(fruit:1.3)"], "style": "emoji",
                                                   "negative_keywords": ["blurry"], "seed": 5, **FAST,
                                                   "steps": 3, "expand_keywords": False})
        job_id = response.json()["id"]
        assert response.status_code == 202 and response.headers["location"] == f"/api/jobs/{job_id}"
        events: list[tuple[str, dict]] = []
        with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name:
                    events.append((name, json.loads(line[6:])))
    names = [name for name, _ in events]
    assert names[-1] == "done" and "progress" in names
    previews = [data["preview"] for name, data in events if name == "progress" and "preview" in data]
    assert previews, "no preview image in the progress events"
    preview = Image.open(io.BytesIO(base64.b64decode(previews[-1].split(",", 1)[1])))
    assert max(preview.size) <= 128
    done = events[-1][1]
    assert done["status"] == "succeeded" and len(done["images"]) == 1
    image = done["images"][0]
    assert image["seed"] == 5 and image["request"]["keywords"] == ["red apple", "(fruit:1.3)"]
    assert image["params"]["prompt"] == "red apple, (fruit:1.3), emoji, flat colors, simple shapes, centered"
    assert "Negative prompt: blurry, photo, text" in image["infotext"]
    assert image["params"]["expand_keywords"] is False and "Keyword expansion: off" in image["infotext"]


def test_queued_job_runs_after_its_client_leaves(server: Running) -> None:
    with server.client() as first:
        job_id = first.post("/api/jobs", json={"keywords": ["left alone"], **FAST}).json()["id"]
    with server.client() as later:
        assert wait_job(later, job_id)["status"] == "succeeded"


def test_gallery_pages_with_metadata_and_downloads(server: Running) -> None:
    with server.client() as client:
        request = {"keywords": ["pear"], "batch_size": 3, "seed": 40, **FAST}
        job_id = client.post("/api/jobs", json=request).json()["id"]
        assert wait_job(client, job_id)["status"] == "succeeded"
        first = client.get("/api/images", params={"limit": 2}).json()
        assert first["total"] == 3 and len(first["images"]) == 2 and first["next_offset"] == 2
        rest = client.get("/api/images", params={"offset": 2, "limit": 2}).json()
        assert len(rest["images"]) == 1 and rest["next_offset"] is None
        seeds = sorted(i["seed"] for i in first["images"] + rest["images"])
        assert seeds == [40, 41, 42]
        image = first["images"][0]
        assert "Steps: 2" in image["infotext"] and image["params"]["width"] == 64
        download = client.get(image["download"])
        assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
        assert Image.open(io.BytesIO(download.content)).info["parameters"] == image["infotext"]


def test_cancel_stops_within_one_step(server: Running) -> None:
    with server.client() as client:
        job_id = client.post("/api/jobs", json=LONG).json()["id"]
        wait_for(lambda: client.get(f"/api/jobs/{job_id}").json().get("progress", {}).get("step", 0) >= 2)
        cancelled = client.delete(f"/api/jobs/{job_id}")
        assert cancelled.status_code == 202
        step_when_asked = cancelled.json()["progress"]["step"]
        job = wait_job(client, job_id)
    assert job["status"] == "cancelled"
    assert job["info"]["steps_done"] <= step_when_asked + 1  # the step under way finishes, no more


def test_queue_is_bounded_and_queued_jobs_cancel_at_once(serve, config: ServerConfig) -> None:  # type: ignore[no-untyped-def]
    running = serve(replace(config, max_queue=2))
    with running.client() as client:
        busy = client.post("/api/jobs", json=LONG).json()["id"]
        wait_job(client, busy, ("running",))
        queued = [client.post("/api/jobs", json={"keywords": [f"q{i}"], **FAST}) for i in range(2)]
        assert [r.status_code for r in queued] == [202, 202]
        assert [r.json()["position"] for r in queued] == [0, 1]
        refused = client.post("/api/jobs", json={"keywords": ["one too many"], **FAST})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        sync_refused = client.post("/sdapi/v1/txt2img", json={"prompt": "x", **FAST})
        assert sync_refused.status_code == 429
        gone = client.delete(f"/api/jobs/{queued[0].json()['id']}")
        assert gone.status_code == 202 and gone.json()["status"] == "cancelled"
        assert client.post("/api/jobs", json={"keywords": ["room again"], **FAST}).status_code == 202
        client.delete(f"/api/jobs/{busy}")
        assert wait_job(client, busy)["status"] == "cancelled"
        assert client.delete(f"/api/jobs/{busy}").status_code == 409  # already finished
        assert client.get("/api/jobs/nope").status_code == 404


@pytest.fixture
def oom_once(painter: Painter):  # type: ignore[no-untyped-def]
    """The U-Net runs out of memory on its next call, once. (A real OOM cannot be had safely on a CPU;
    the error type and where it is raised are the real ones.)"""
    armed = {"left": 1}

    def hook(_module: torch.nn.Module, _args: object) -> None:
        if armed["left"]:
            armed["left"] -= 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    handle = painter.model.pipe.unet.register_forward_pre_hook(hook)
    yield
    handle.remove()


def test_out_of_memory_fails_only_that_job(server: Running, oom_once: None) -> None:
    with server.client() as client:
        first = client.post("/api/jobs", json={"keywords": ["too big"], **FAST}).json()["id"]
        second = client.post("/api/jobs", json={"keywords": ["fine"], **FAST}).json()["id"]
        failed = wait_job(client, first)
        assert failed["status"] == "failed" and failed["error"].startswith("out of memory")
        assert wait_job(client, second)["status"] == "succeeded"
        sync = client.post("/sdapi/v1/txt2img", json={"prompt": "still up", **FAST})
        assert sync.status_code == 200


def test_sdapi_client_that_disconnects_leaves_no_work(server: Running) -> None:
    with server.client(timeout=httpx.Timeout(60, read=1.5)) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/sdapi/v1/txt2img", json={"prompt": "abandoned", **LONG, "keywords": None})
    with server.client() as client:
        def cancelled_sync_job() -> dict | None:
            jobs = client.get("/api/jobs").json()["jobs"]
            return next((j for j in jobs if j["kind"] == "sdapi" and j["status"] == "cancelled"), None)

        job = wait_for(cancelled_sync_job, timeout=10)
        assert job["info"]["steps_done"] < 1000
        assert client.get("/sdapi/v1/progress").json()["state"]["sampling_steps"] == 0  # idle again


def test_own_api_validation(server: Running) -> None:
    cases = {
        "keywords": {"keywords": [" "], **FAST},
        "width": {"keywords": ["x"], "width": 60, "height": 64, "steps": 2},
        "steps": {"keywords": ["x"], "width": 1024, "height": 1024, "steps": 1000},  # pixel x step budget
        "prompt": {"prompt": "x" * 10_001, **FAST},
        "typo_field": {"keywords": ["x"], "typo_field": 1, **FAST},
        "style": {"keywords": ["x"], "style": "nope", **FAST},
        "sampler": {"keywords": ["x"], "sampler": "Euler z", **FAST},
        "init_image": {"keywords": ["x"], "init_image": "https://example.com/a.png", **FAST},
        "model": {"keywords": ["x"], "model": "../../etc/passwd", **FAST},
        "expand_keywords": {"keywords": ["x"], "expand_keywords": "no", **FAST},
    }
    with server.client() as client:
        for field, payload in cases.items():
            response = client.post("/api/jobs", json=payload)
            assert response.status_code == 422, (field, response.text)
            assert response.json()["detail"][0]["loc"][-1] == field, (field, response.json())
        assert client.get("/api/jobs").json()["jobs"] == []  # nothing was queued
