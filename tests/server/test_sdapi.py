"""A1111's /sdapi/v1 API as its clients call it: request shapes, defaults, response shapes, errors."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace

import httpx
import numpy as np
from PIL import Image

from keypaint.core.speed import EXACT_TOLERANCE
from tests.server.conftest import FAST, Running, png_b64, wait_for

# What the `webuiapi` client (sdwebuiapi) sends for txt2img, trimmed to keypaint-sized numbers; it carries
# many fields keypaint does not use, which must be accepted and ignored as A1111 does.
WEBUIAPI_TXT2IMG = {
    "enable_hr": False, "denoising_strength": 0.7, "firstphase_width": 0, "firstphase_height": 0,
    "hr_scale": 2, "hr_upscaler": "Latent", "hr_second_pass_steps": 0, "prompt": "red apple, fruit",
    "styles": [], "seed": 7, "subseed": -1, "subseed_strength": 0.0, "seed_resize_from_h": 0,
    "seed_resize_from_w": 0, "sampler_name": "Euler a", "batch_size": 2, "n_iter": 1, "steps": 2,
    "cfg_scale": 7.0, "width": 64, "height": 64, "restore_faces": False, "tiling": False,
    "do_not_save_samples": False, "do_not_save_grid": False, "negative_prompt": "blurry", "eta": 1.0,
    "s_churn": 0, "s_tmax": 0, "s_tmin": 0, "s_noise": 1, "override_settings": {},
    "override_settings_restore_afterwards": True, "script_args": [], "script_name": None,
    "send_images": True, "save_images": False, "alwayson_scripts": {}, "sampler_index": "Euler a",
    "a_field_from_an_extension": {"anything": [1, 2]},
}


def test_txt2img_like_webuiapi(server: Running) -> None:
    with server.client() as client:
        response = client.post("/sdapi/v1/txt2img", json=WEBUIAPI_TXT2IMG)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"images", "parameters", "info", "warnings"} and body["warnings"] == []
    assert len(body["images"]) == 2
    info = json.loads(body["info"])
    for key in ("prompt", "all_prompts", "negative_prompt", "seed", "all_seeds", "subseed", "all_subseeds",
                "width", "height", "sampler_name", "cfg_scale", "steps", "batch_size", "sd_model_name",
                "infotexts", "index_of_first_image", "job_timestamp", "version"):
        assert key in info, key
    assert info["all_seeds"] == [7, 8]  # picture i uses seed + i
    assert info["sampler_name"] == "Euler a" and info["width"] == 64
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][1])))
    assert image.size == (64, 64)
    assert image.info["parameters"] == info["infotexts"][1]  # the PNG carries its infotext, as A1111's do
    assert "Seed: 8" in image.info["parameters"] and "Negative prompt: blurry" in image.info["parameters"]
    assert body["parameters"]["prompt"] == "red apple, fruit" and "a_field_from_an_extension" not in body[
        "parameters"]
    with server.client() as client:  # save_images false: nothing went into the gallery
        assert client.get("/api/images").json()["total"] == 0


def test_txt2img_defaults_are_a1111s(server: Running) -> None:
    """Only a prompt and the size: A1111's defaults fill the rest (50 steps, Euler, cfg 7, seed -1)."""
    with server.client() as client:
        response = client.post("/sdapi/v1/txt2img", json={"prompt": "cat", "width": 64, "height": 64,
                                                           "steps": 2, "seed": None, "save_images": True})
        assert response.status_code == 200, response.text
        params = response.json()["parameters"]
        assert params["cfg_scale"] == 7.0 and params["n_iter"] == 1 and params["sampler_index"] == "Euler"
        info = json.loads(response.json()["info"])
        assert info["sampler_name"] == "Euler" and info["seed"] >= 0  # -1 became a recorded seed
        gallery = client.get("/api/images").json()
        assert gallery["total"] == 1 and gallery["images"][0]["seed"] == info["seed"]


def test_img2img_with_data_url_and_mask(server: Running) -> None:
    mask = png_b64((64, 64), (255, 255, 255))
    payload = {"prompt": "apple", "init_images": [f"data:image/png;base64,{png_b64()}"], "mask": mask,
               "denoising_strength": 0.5, "sampler_name": "DPM++ 2M", "scheduler": "Karras", **FAST,
               "seed": 3, "inpainting_fill": 1, "mask_blur": 4, "include_init_images": False}
    with server.client() as client:
        response = client.post("/sdapi/v1/img2img", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["parameters"]["init_images"] is None  # not echoed back, as A1111
    info = json.loads(body["info"])
    assert info["denoising_strength"] == 0.5 and "Schedule type: Karras" in info["infotexts"][0]


def test_lists_and_options(serve, config, tiny_models_home) -> None:  # type: ignore[no-untyped-def]
    from keypaint.server.app import default_factory

    factory = default_factory(config)
    running = serve(config, painter=factory("tiny-a"), factory=factory)
    with running.client() as client:
        samplers = client.get("/sdapi/v1/samplers").json()
        names = {s["name"] for s in samplers}
        assert {"Euler a", "DPM++ 2M", "DDIM", "UniPC"} <= names
        assert all(set(s) == {"name", "aliases", "options"} for s in samplers)
        schedulers = client.get("/sdapi/v1/schedulers").json()
        assert {s["label"] for s in schedulers} >= {"Automatic", "Karras"}
        models = client.get("/sdapi/v1/sd-models").json()
        assert {"tiny-a", "tiny-b"} <= {m["model_name"] for m in models}
        assert set(models[0]) == {"title", "model_name", "hash", "sha256", "filename", "config"}
        assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("tiny-a")
        title = next(m["title"] for m in models if m["model_name"] == "tiny-b")
        assert client.post("/sdapi/v1/options", json={"sd_model_checkpoint": title}).status_code == 200
        assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("tiny-b")
        made = client.post("/sdapi/v1/txt2img", json={"prompt": "x", **FAST})
        assert json.loads(made.json()["info"])["sd_model_name"] == "tiny-b"
        override = client.post("/sdapi/v1/txt2img", json={
            "prompt": "x", **FAST, "override_settings": {"sd_model_checkpoint": "tiny-a"}})
        assert json.loads(override.json()["info"])["sd_model_name"] == "tiny-a"
        bad = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "nope.safetensors"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "sd_model_checkpoint"]


def test_png_info_round_trip(server: Running) -> None:
    with server.client() as client:
        made = client.post("/sdapi/v1/txt2img", json={"prompt": "red (apple:1.2)", **FAST, "seed": 11})
        picture = made.json()["images"][0]
        info = client.post("/sdapi/v1/png-info", json={"image": f"data:image/png;base64,{picture}"}).json()
    assert set(info) == {"info", "items", "parameters"}
    assert info["parameters"]["Prompt"] == "red (apple:1.2)" and info["parameters"]["Seed"] == "11"
    assert info["parameters"]["Size-1"] == "64" and "keypaint" in info["items"]


def test_progress_when_idle(server: Running) -> None:
    with server.client() as client:
        for probe in ("upscalers", "latent-upscale-modes", "sd-vae", "loras", "prompt-styles", "scripts",
                      "embeddings", "cmd-flags"):  # what clients such as SillyTavern ask at start
            assert client.get(f"/sdapi/v1/{probe}").status_code == 200, probe
        progress = client.get("/sdapi/v1/progress").json()
        assert client.post("/sdapi/v1/interrupt").status_code == 200
    assert progress["progress"] == 0 and progress["current_image"] is None
    assert {"sampling_step", "sampling_steps", "job_count", "interrupted"} <= set(progress["state"])


def test_bad_requests_name_the_field(server: Running) -> None:
    cases = {
        "steps": {"prompt": "x", "steps": "many"},
        "width": {"prompt": "x", "width": 65, "height": 64, "steps": 2},
        "cfg_scale": {"prompt": "x", "cfg_scale": -1, **FAST},
        "n_iter": {"prompt": "x", "n_iter": 0, **FAST},
        "seed": {"prompt": "x", "seed": True, **FAST},
        "sampler_name": {"prompt": "x", "sampler_name": "Euler z", **FAST},
        "scheduler": {"prompt": "x", "scheduler": "Polyexponential", **FAST},
        "hires": {"prompt": "x", "enable_hr": True, "hr_scale": 0.5, **FAST},
        "prompt": {"prompt": ["not", "text"], **FAST},
        "styles": {"prompt": "x", "styles": ["my A1111 style"], **FAST},
    }
    with server.client() as client:
        for field, payload in [*cases.items(), ("cfg_scale", {"prompt": "x", "cfg_scale": 1e308, **FAST})]:
            response = client.post("/sdapi/v1/txt2img", json=payload)
            assert response.status_code == 422, (field, response.text)
            assert response.json()["detail"][0]["loc"][-1] == field, (field, response.json())
            assert response.json()["error"].startswith(field)
        assert client.post("/api/jobs", json={"keywords": ["x"], "guidance_scale": 1e308}).status_code == 422
        assert client.get("/api/info").json()["limits"]["max_guidance_scale"] == 30
        not_utf8, too_deep = b'{"prompt": "\xff\xfe"}', b"[" * 100_000 + b"]" * 100_000
        for path, body in (("/sdapi/v1/txt2img", not_utf8), ("/api/jobs", too_deep)):
            response = client.post(path, content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 400, response.text
            assert response.json()["error"].startswith("body: ")


def test_img2img_refuses_urls_and_bad_pictures(server: Running) -> None:
    cases = {
        "http://127.0.0.1:9/secret.png": "URLs are not fetched",
        "file:///etc/passwd": "URLs are not fetched",
        "bm90IGEgcGljdHVyZQ==": "not a readable picture",
        "%%%": "not valid base64",
    }
    with server.client() as client:
        for init, message in cases.items():
            response = client.post("/sdapi/v1/img2img", json={"prompt": "x", "init_images": [init], **FAST})
            assert response.status_code == 422, response.text
            assert response.json()["detail"][0]["loc"] == ["body", "init_images"]
            assert message in response.json()["error"]


def test_progress_preview_and_interrupt_of_a_sync_request(server: Running) -> None:
    """An A1111 client polls /progress while its txt2img runs, then interrupts it."""
    import threading

    answer: dict[str, object] = {}

    def call() -> None:
        with server.client() as client:
            slow = {"prompt": "slow", "steps": 1000, "width": 64, "height": 64}
            answer["response"] = client.post("/sdapi/v1/txt2img", json=slow)

    caller = threading.Thread(target=call)
    caller.start()
    with server.client() as client:
        def running() -> dict | None:
            p = client.get("/sdapi/v1/progress").json()
            return p if p["state"]["sampling_step"] >= 2 and p["current_image"] else None

        progress = wait_for(running)
        assert progress["state"]["sampling_steps"] == 1000 and 0 < progress["progress"] < 1
        preview = Image.open(io.BytesIO(base64.b64decode(progress["current_image"])))
        assert preview.format == "PNG" and max(preview.size) <= 128
        skipped = client.get("/sdapi/v1/progress", params={"skip_current_image": True}).json()
        assert skipped["current_image"] is None
        assert client.post("/sdapi/v1/interrupt").status_code == 200
    caller.join(30)
    response = answer["response"]
    assert isinstance(response, httpx.Response) and response.status_code == 200
    assert response.json()["images"] == [] and json.loads(response.json()["info"])["interrupted"] is True


def test_interrupting_a_multi_batch_call_returns_the_finished_pictures(server: Running) -> None:
    """n_iter 3, interrupted during its second batch: the first batch's picture comes back (A1111 does so)."""
    import threading

    answer: dict[str, httpx.Response] = {}

    def call() -> None:
        with server.client(timeout=300) as client:
            body = {"prompt": "slow", "steps": 200, "width": 64, "height": 64, "n_iter": 3, "seed": 5}
            answer["response"] = client.post("/sdapi/v1/txt2img", json=body)

    caller = threading.Thread(target=call)
    caller.start()
    with server.client() as client:
        # batch 2 runs (a loaded machine may take a while over batch 1)
        wait_for(lambda: client.get("/sdapi/v1/progress").json()["state"]["job_no"] >= 1, timeout=240)
        assert client.post("/sdapi/v1/interrupt").status_code == 200
    caller.join(120)
    response = answer["response"]
    assert response.status_code == 200, response.text
    info = json.loads(response.json()["info"])
    images = response.json()["images"]
    assert info["interrupted"] is True and 1 <= len(images) < 3
    assert info["all_seeds"][:len(images)] == [5, 6][:len(images)] and len(info["infotexts"]) == len(images)
    first = Image.open(io.BytesIO(base64.b64decode(images[0])))
    assert first.size == (64, 64) and "Seed: 5" in first.info["parameters"]


def test_speed_options_reach_every_model_the_server_loads(  # type: ignore[no-untyped-def]
    serve, config, tiny_models_home
) -> None:
    from keypaint.core.speed import SpeedOptions
    from keypaint.server.app import default_factory

    config = replace(config, speed=SpeedOptions(token_merging=0.5))
    factory = default_factory(config)
    running = serve(config, painter=factory("tiny-a"), factory=factory)
    with running.client() as client:
        assert client.get("/sdapi/v1/options").json()["token_merging_ratio"] == 0.5
        made = client.post("/sdapi/v1/txt2img", json={"prompt": "x", **FAST})
        assert made.status_code == 200, made.text
        assert "Token merging ratio: 0.5" in json.loads(made.json()["info"])["infotexts"][0]
        switched = client.post("/sdapi/v1/txt2img", json={
            "prompt": "x", **FAST, "override_settings": {"sd_model_checkpoint": "tiny-b"}})
        assert "Token merging ratio: 0.5" in json.loads(switched.json()["info"])["infotexts"][0]
        same = client.post("/sdapi/v1/txt2img", json={
            "prompt": "x", **FAST, "override_settings": {"token_merging_ratio": 0.5}})
        assert same.status_code == 200
        other = client.post("/sdapi/v1/txt2img", json={
            "prompt": "x", **FAST, "override_settings": {"token_merging_ratio": 0.3}})
        assert other.status_code == 422
        assert other.json()["detail"][0]["loc"] == ["body", "override_settings.token_merging_ratio"]
        assert "--token-merging" in other.json()["detail"][0]["msg"]


def test_fast_server_paints_what_the_plain_one_paints(  # type: ignore[no-untyped-def]
    serve, config, tiny_models_home, tmp_path
) -> None:
    from keypaint.core.speed import SpeedOptions
    from keypaint.server.app import default_factory

    pictures = []
    for speed in (SpeedOptions(), SpeedOptions(fast=True, cache_dir=tmp_path / "speed")):
        fast_config = replace(config, speed=speed, out=tmp_path / f"out-{speed.fast}")
        factory = default_factory(fast_config)
        running = serve(fast_config, painter=factory("tiny-a"), factory=factory)
        with running.client() as client:
            made = client.post("/sdapi/v1/txt2img", json={"prompt": "red apple", "seed": 3, **FAST})
            assert made.status_code == 200, made.text
            pictures.append(Image.open(io.BytesIO(base64.b64decode(made.json()["images"][0]))))
        running.stop()
    difference = np.abs(np.asarray(pictures[0], dtype=int) - np.asarray(pictures[1], dtype=int)).max()
    assert difference <= EXACT_TOLERANCE["cpu"]
    assert any((tmp_path / "speed").iterdir())  # the ONNX graphs were exported there


def test_a1111_default_size_is_painted_native_and_upscaled(server: Running) -> None:
    """No size: A1111's 512x512; the tiny model (64 px native) paints 64 px and upscales, and says so."""
    with server.client() as client:
        response = client.post("/sdapi/v1/txt2img", json={"prompt": "cat", "steps": 2, "seed": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    assert image.size == (512, 512) and body["warnings"] == []
    infotext = image.info["parameters"]
    assert "Size: 64x64" in infotext and "Upscaled to: 512x512, Upscaler: Lanczos" in infotext
    assert json.loads(image.info["keypaint"])["extra"]["Upscaled to"] == "512x512"


def test_a_far_off_size_is_painted_with_a_warning(server: Running) -> None:
    with server.client() as client:
        response = client.post("/sdapi/v1/txt2img", json={"prompt": "cat", "steps": 2, "width": 256,
                                                          "height": 256})
    assert response.status_code == 200, response.text
    [warning] = response.json()["warnings"]
    assert "256x256 is far from the 64x64" in warning
