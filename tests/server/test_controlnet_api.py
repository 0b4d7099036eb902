"""sd-webui-controlnet's API on a real `keypaint serve` app on loopback, driven by webuiapi's ControlNetUnit:
units in txt2img/img2img, detected maps appended, /controlnet routes, and the job API's units."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import webuiapi
from PIL import Image, ImageDraw

from keypaint.models.loaded import LoadedModel, ModelKind
from keypaint.models.tiny import tiny_model
from keypaint.outputs.metadata import read_metadata

from ..core.controlnet_files import save_single_file, tiny_controlnet
from .conftest import Running, png_b64, wait_job


def sketch() -> Image.Image:
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).rectangle((14, 14, 50, 50), outline="black", width=3)
    return image


@pytest.fixture(scope="module")
def controlnet_files(tmp_path_factory: pytest.TempPathFactory, tiny_sd1: LoadedModel) -> Path:
    folder = tmp_path_factory.mktemp("controlnets")
    save_single_file(tiny_controlnet(tiny_sd1), folder / "sd1-canny.safetensors")
    tiny_controlnet(tiny_model(ModelKind.SDXL)).save_pretrained(folder / "sdxl-canny")
    return folder


@pytest.fixture
def server(serve: Callable[..., Running], config: Any, _private_home: Path, controlnet_files: Path
           ) -> Running:
    (_private_home / "controlnet").symlink_to(controlnet_files, target_is_directory=True)
    return serve(config)


def client_api(server: Running) -> webuiapi.WebUIApi:
    return webuiapi.WebUIApi(baseurl=f"{server.url}/sdapi/v1")


def test_webuiapi_controlnet_unit_steers_txt2img_and_gets_its_detected_map(server: Running) -> None:
    api = client_api(server)
    [name, _] = api.controlnet_model_list()
    assert name.startswith("sd1-canny [") and "canny" in api.controlnet_module_list()
    unit = webuiapi.ControlNetUnit(image=sketch(), module="canny", model=name, threshold_a=100,
                                   threshold_b=200, pixel_perfect=True)
    kwargs = {"prompt": "red apple", "steps": 2, "width": 64, "height": 64, "seed": 3}
    steered = api.txt2img(controlnet_units=[unit], **kwargs)
    plain = api.txt2img(alwayson_scripts={}, **kwargs)  # webuiapi's default dict keeps the last call's units
    assert len(steered.images) == 2 and len(plain.images) == 1  # the picture, then the unit's detected map
    edges = np.asarray(steered.images[1].convert("L"))
    assert set(np.unique(edges)) <= {0, 255} and edges[11:20, 20:44].max(axis=0).min() == 255  # its top side
    assert edges[28:36, 28:36].max() == 0 and edges[:8].max() == 0  # nothing inside it, nothing above it
    picture, unsteered = np.asarray(steered.image, float), np.asarray(plain.image, float)
    assert np.abs(picture - unsteered).mean() > 1.0
    assert 'ControlNet 0: "Module: canny, Model: sd1-canny [' in steered.info["infotexts"][0]


def test_img2img_takes_units_too(server: Running) -> None:
    api = client_api(server)
    unit = webuiapi.ControlNetUnit(image=sketch(), module="scribble_xdog", model="sd1-canny")
    result = api.img2img(images=[Image.new("RGB", (64, 64), "green")], prompt="red apple", steps=2, width=64,
                         height=64, denoising_strength=1.0, controlnet_units=[unit])
    assert len(result.images) == 2


def test_detect_returns_the_preprocessed_maps(server: Running) -> None:
    api = client_api(server)
    answer = api.controlnet_detect([sketch()], module="canny", processor_res=64, threshold_a=100,
                                   threshold_b=200)
    [edges] = answer.images
    assert edges.size == (64, 64) and np.asarray(edges.convert("L")).max() == 255
    with server.client() as client:
        refused = client.post("/controlnet/detect", json={"controlnet_module": "depth_midas",
                                                          "controlnet_input_images": [png_b64()]})
    assert refused.status_code == 422 and "depth_midas" in refused.json()["error"]


@pytest.mark.parametrize(("unit", "field", "words"), [
    ({"module": "openpose"}, "module", "not available"),
    ({"control_mode": "My prompt is more important"}, "control_mode", "guess mode"),
    ({"model": "nope"}, "", "unknown ControlNet 'nope'"),
    ({"model": "sdxl-canny"}, "", "(XL)"),  # the tiny SDXL ControlNet's family, from its config
    ({"guidance_start": 0.8, "guidance_end": 0.2}, "control_start", "unit 0: start 0.8 must be before end"),
])
def test_units_that_cannot_run_are_a_422_naming_the_field(
        server: Running, unit: dict[str, Any], field: str, words: str) -> None:
    sent = {**webuiapi.ControlNetUnit(image=sketch(), module="canny", model="sd1-canny").to_dict(), **unit}
    body = {"prompt": "red apple", "steps": 2, "width": 64, "height": 64,
            "alwayson_scripts": {"ControlNet": {"args": [sent]}}}
    with server.client() as client:
        response = client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"] and words in response.json()["error"]


def test_the_job_api_takes_units_and_the_picture_keeps_its_control_image(server: Running) -> None:
    buffer = io.BytesIO()
    sketch().save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    unit = {"model": "sd1-canny", "image": image, "preprocess": "canny"}
    with server.client() as client:
        job = client.post("/api/jobs", json={"keywords": ["red apple"], "steps": 2, "width": 64, "height": 64,
                                             "control_units": [unit]}).json()
        done = wait_job(client, job["id"])
    assert done["status"] == "succeeded", done
    [recorded] = done["params"]["control_units"]
    assert recorded["model"] == "sd1-canny" and len(recorded["image"]) == 64  # by hash, no picture inside
    path = server.config.out / done["images"][0]["url"].removeprefix("/files/")
    meta = read_metadata(path)
    assert meta.data is not None and meta.data["params"]["control_units"][0]["image"] == recorded["image"]
    assert (path.parent / "controls" / f"{recorded['image']}.png").is_file()


def test_the_built_in_model_offers_its_sketch_control(serve, config) -> None:  # type: ignore[no-untyped-def]
    from keypaint.builtin import MODEL, load_builtin
    from keypaint.core.painter import Painter as CorePainter

    server = serve(config, painter=CorePainter(load_builtin(), builtin=MODEL))
    sketch = Image.new("RGB", (128, 128), "white")
    ImageDraw.Draw(sketch).ellipse((24, 24, 104, 104), outline="black", width=3)
    buffer = io.BytesIO()
    sketch.save(buffer, format="PNG")
    with server.client() as client:
        [name] = client.get("/controlnet/model_list").json()["model_list"]
        assert name.startswith("keypaint-sketch [")
        unit = {"model": name, "image": base64.b64encode(buffer.getvalue()).decode(), "preprocess": "none"}
        body = {"prompt": "red apple", "steps": 4, "seed": 3, "control_units": [unit]}
        job = client.post("/api/jobs", json=body)
        assert job.status_code == 202, job.text
        done = wait_job(client, job.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["params"]["control_units"][0]["model"] == "keypaint-sketch"
