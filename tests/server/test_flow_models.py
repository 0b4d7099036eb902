"""A Flux.1 model behind the A1111 API and the job API: switched to by `sd_model_checkpoint`, listed, with
Forge's `distilled_cfg_scale` and keypaint's `shift` in the request and in the picture's infotext."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from keypaint.server.app import default_factory
from keypaint.server.config import ServerConfig
from keypaint.server.job_store import FINISHED
from tests.server.conftest import Running, wait_for

SMALL = {"steps": 2, "width": 32, "height": 32}


@pytest.fixture(scope="module")
def flux_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from keypaint.models.tiny_flow import tiny_flux_pipeline

    folder = tmp_path_factory.mktemp("server-flow") / "tiny-flux"
    tiny_flux_pipeline().save_pretrained(folder)
    return folder


@pytest.fixture
def flow_server(serve: Callable[..., Running], config: ServerConfig, tiny_models_home: Path,
                flux_folder: Path) -> Running:
    (tiny_models_home / "models" / "tiny-flux").symlink_to(flux_folder, target_is_directory=True)
    factory = default_factory(config)
    return serve(config, painter=factory("tiny-a"), factory=factory)


def test_sdapi_switches_to_flux_and_records_forge_fields(flow_server: Running) -> None:
    with flow_server.client() as client:
        listed = [m["model_name"] for m in client.get("/sdapi/v1/sd-models").json()]
        assert "tiny-flux" in listed
        made = client.post("/sdapi/v1/txt2img", json={
            "prompt": "red apple", **SMALL, "seed": 3, "sampler_name": "Euler", "distilled_cfg_scale": 4.5,
            "shift": 2, "override_settings": {"sd_model_checkpoint": "tiny-flux"}})
        assert made.status_code == 200, made.text
        info = json.loads(made.json()["info"])
        assert info["sd_model_name"] == "tiny-flux"
        assert "Distilled CFG Scale: 4.5, Shift: 2" in info["infotexts"][0]

        refused = client.post("/sdapi/v1/txt2img", json={
            "prompt": "x", **SMALL, "sampler_name": "DDIM",
            "override_settings": {"sd_model_checkpoint": "tiny-flux"}})
        assert refused.status_code in (400, 422), refused.text
        assert "DDIM does not sample flow models" in refused.text


def test_job_api_paints_with_flux(flow_server: Running) -> None:
    with flow_server.client() as client:
        job = client.post("/api/jobs", json={"keywords": ["red apple"], **SMALL, "seed": 1,
                                             "model": "tiny-flux", "distilled_guidance": 2.5})
        assert job.status_code in (200, 201, 202), job.text
        job_id = job.json()["id"]
        done = wait_for(lambda: (j := client.get(f"/api/jobs/{job_id}").json())["status"] in FINISHED and j)
        assert done["status"] == "succeeded", done
        assert done["params"]["flow"] == {"distilled_guidance": 2.5}
