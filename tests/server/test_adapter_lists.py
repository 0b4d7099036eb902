"""LoRAs and embeddings over HTTP: listed from the server's folders, used by name, refused when wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from keypaint.core.painter import Painter
from keypaint.finetune.lora import add_lora, kohya_state, lora_state, remove_lora
from keypaint.finetune.output import write_new_file
from keypaint.models.adapter_format import FinetuneInfo, embedding_header, lora_header, model_fingerprint
from keypaint.models.loaded import LoadedModel, ModelKind
from keypaint.models.tiny import tiny_model
from keypaint.server.config import ServerConfig
from tests.server.conftest import FAST, Running, wait_job


def adapter_files(model: LoadedModel, home: Path) -> None:
    """A LoRA `zqstyle` and an embedding `zqword` for `model`, as `keypaint finetune` writes them."""
    info = FinetuneInfo(
        method="lora",
        token="zqstyle",
        base_model=model.name,
        base_sha256=model_fingerprint(model),
        base_kind=model.kind.value,
        steps=1,
    )
    unet = model.pipe.unet
    add_lora(unet, 4, seed=0)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # a LoRA that does something
    tensors = kohya_state(lora_state(unet))
    remove_lora(unet)
    write_new_file(home / "loras" / "zqstyle.safetensors", tensors, lora_header(info, model.kind, 4, 4.0))
    info.method, info.token = "textual-inversion", "zqword"
    vectors = {"emb_params": torch.randn(2, 32)}
    write_new_file(home / "embeddings" / "zqword.safetensors", vectors, embedding_header(info, model.kind))


@pytest.fixture
def adapter_server(serve, tmp_path: Path) -> Running:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    model = tiny_model(ModelKind.SD1)  # its own copy: LoRAs get loaded into it
    adapter_files(model, home)
    return serve(ServerConfig(out=tmp_path / "outputs", home=home), painter=Painter(model, home=home))


def test_folders_are_listed_the_way_a1111_lists_them(adapter_server: Running) -> None:
    with adapter_server.client() as client:
        [lora] = client.get("/sdapi/v1/loras").json()
        embeddings = client.get("/sdapi/v1/embeddings").json()
    assert lora["name"] == "zqstyle" and lora["path"] == "zqstyle.safetensors"
    assert lora["metadata"]["ss_network_dim"] == "4" and lora["metadata"]["ss_output_name"] == "zqstyle"
    assert embeddings["loaded"]["zqword"] == {
        "step": 1,
        "sd_checkpoint": embeddings["loaded"]["zqword"]["sd_checkpoint"],
        "sd_checkpoint_name": "tiny-sd1",
        "shape": 32,
        "vectors": 2,
    }
    assert embeddings["skipped"] == {}


def test_jobs_use_loras_and_embeddings_by_name(adapter_server: Running) -> None:
    with adapter_server.client() as client:
        body = {
            "keywords": ["red disc", "zqword"],
            "seed": 1,
            **FAST,
            "loras": [{"name": "zqstyle", "weight": 0.8}],
            "embeddings": ["zqword"],
        }
        job = wait_job(client, client.post("/api/jobs", json=body).json()["id"])
        assert job["status"] == "succeeded", job
        infotext = client.get("/api/images").json()["images"][0]["infotext"]
        assert 'Lora weights: "zqstyle: 0.8"' in infotext and 'TI hashes: "zqword: ' in infotext

        answer = client.post("/sdapi/v1/txt2img", json={"prompt": "red disc <lora:zqstyle:0.5>", **FAST})
        assert answer.status_code == 200
        [infotext] = json.loads(answer.json()["info"])["infotexts"]
        assert 'Lora weights: "zqstyle: 0.5"' in infotext


@pytest.mark.parametrize(
    ("lora", "message"),
    [
        ({"name": "zqstyle", "weight": 2.5}, "loras: zqstyle: weight 2.5 is outside [-2, 2]"),
        (
            {"name": "../zqstyle", "weight": 1},
            "loras: '../zqstyle': give a name from the server's loras folder",
        ),
        ({"name": "/etc/zq.safetensors", "weight": 1}, "loras: '/etc/zq.safetensors': give a name"),
        ({"name": "nothere", "weight": 1}, "unknown LoRA 'nothere'"),
    ],
)
def test_bad_loras_are_a_422_naming_the_field(adapter_server: Running, lora: dict, message: str) -> None:
    with adapter_server.client() as client:
        answer = client.post("/api/jobs", json={"keywords": ["red disc"], **FAST, "loras": [lora]})
    assert answer.status_code == 422 and message in answer.json()["error"]
    with adapter_server.client() as client:
        tag = client.post("/sdapi/v1/txt2img", json={"prompt": "red <lora:../x:1>", **FAST})
    assert tag.status_code == 422 and "give the name of a file" in tag.json()["error"]
