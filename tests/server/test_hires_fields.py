"""The hires fix and outpainting through A1111's API (enable_hr, "Poor man's outpainting") and the job API."""

from __future__ import annotations

import base64
import io
import json

from PIL import Image

from tests.server.conftest import Running, png_b64, wait_job


def picture(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_a1111_txt2img_hires(server: Running) -> None:
    body = {"prompt": "red apple", "steps": 2, "width": 32, "height": 32, "seed": 3, "enable_hr": True,
            "hr_scale": 2, "hr_upscaler": "Lanczos", "hr_second_pass_steps": 4, "denoising_strength": 0.5,
            "hr_sampler_name": "", "hr_prompt": ""}
    with server.client() as client:
        response = client.post("/sdapi/v1/txt2img", json=body)
        assert response.status_code == 200, response.text
        image = picture(response.json()["images"][0])
        assert image.size == (64, 64)
        assert ("Size: 32x32" in image.info["parameters"]
                and "Denoising strength: 0.5, Hires upscale: 2, Hires steps: 4, Hires upscaler: Lanczos"
                in image.info["parameters"])
        assert json.loads(response.json()["info"])["width"] == 64
        refused = client.post("/sdapi/v1/txt2img", json={**body, "hr_checkpoint_name": "other"})
        assert refused.status_code == 422 and refused.json()["error"].startswith("hr_checkpoint_name")
        names = [u["name"] for u in client.get("/sdapi/v1/upscalers").json()]
        assert names[:2] == ["Lanczos", "Nearest"]
        assert "Latent" in [m["name"] for m in client.get("/sdapi/v1/latent-upscale-modes").json()]
        assert client.get("/sdapi/v1/scripts").json()["img2img"] == ["poor man's outpainting"]


def test_a1111_img2img_poor_mans_outpainting(server: Running) -> None:
    body = {"prompt": "apple", "steps": 2, "seed": 1, "init_images": [png_b64((32, 32))], "width": 48,
            "height": 48, "denoising_strength": 1.0, "script_name": "Poor man's outpainting",
            "script_args": [8, 2, 0, ["left", "right", "up", "down"]]}
    with server.client() as client:
        response = client.post("/sdapi/v1/img2img", json=body)
        assert response.status_code == 200, response.text
        image = picture(response.json()["images"][0])
        assert image.size == (48, 48) and 'Outpaint: "left' in image.info["parameters"]
        for args, message in (([12, 4, 0, ["left"]], "left must be a multiple of 8"),
                              ([8, 4, 2, ["left"]], "masked content"), ([8, 4, 0, ["north"]], "directions")):
            refused = client.post("/sdapi/v1/img2img", json={**body, "script_args": args})
            assert refused.status_code == 422 and message in refused.text, refused.text
        other = client.post("/sdapi/v1/img2img", json={**body, "script_name": "X/Y/Z plot"})
        assert other.status_code == 422 and other.json()["error"].startswith("script_name")


def test_job_api_hires_and_outpaint(server: Running) -> None:
    with server.client() as client:
        hires = client.post("/api/jobs", json={"keywords": ["apple"], "steps": 2, "width": 32, "height": 32,
                                               "hires": {"scale": 2, "upscaler": "Latent", "strength": 0.5}})
        outpaint = client.post("/api/jobs", json={"keywords": ["apple"], "steps": 2, "strength": 1.0,
                                                  "init_image": png_b64((32, 32)),
                                                  "outpaint": {"left": 16, "down": 8}})
        assert hires.status_code == outpaint.status_code == 202, (hires.text, outpaint.text)
        done = [wait_job(client, job.json()["id"]) for job in (hires, outpaint)]
        assert [job["status"] for job in done] == ["succeeded", "succeeded"]
        assert [(i["width"], i["height"]) for job in done for i in job["images"]] == [(64, 64), (48, 40)]
        assert done[0]["params"]["hires"]["scale"] == 2 and done[1]["images"][0]["params"]["outpaint"]["left"]
        for payload, field in (({"hires": {"scale": 9}}, "hires"), ({"outpaint": {"left": 8}}, "outpaint"),
                               ({"hires": {"colour": 1}}, "colour")):
            refused = client.post("/api/jobs", json={"keywords": ["x"], "steps": 2, **payload})
            assert refused.status_code == 422 and field in refused.text, refused.text
