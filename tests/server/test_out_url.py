"""`keypaint serve --out URL`: pictures go to an fsspec location and the gallery, the job API and A1111's API
read them back through it (a `file://` URL here: no S3-compatible server installs offline)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from keypaint.server.config import ServerConfig
from tests.server.conftest import FAST, Running, wait_job


def test_pictures_go_to_the_url_and_come_back(serve: Callable[..., Running], tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    config = ServerConfig(out=tmp_path / "local", out_url=f"file://{bucket}/prefix", db=tmp_path / "jobs.db")
    server = serve(config)
    with server.client() as client:
        job = wait_job(client, client.post("/api/jobs", json={"keywords": ["fox"], **FAST}).json()["id"])
        assert job["status"] == "succeeded", job
        [image] = job["images"]
        [saved] = (bucket / "prefix").glob("*/*.png")
        assert image["url"] == f"/files/{saved.parent.name}/{saved.name}"
        served = client.get(image["url"])
        assert served.status_code == 200 and served.content == saved.read_bytes()
        download = client.get(image["download"])
        assert download.headers["content-disposition"] == f'attachment; filename="{saved.name}"'
        gallery = client.get("/api/images").json()
        assert [item["url"] for item in gallery["images"]] == [image["url"]]

        made = client.post("/sdapi/v1/txt2img", json={"prompt": "owl", "save_images": True, **FAST})
        assert made.status_code == 200, made.text
        pictures = sorted((bucket / "prefix").glob("*/*.png"))
        assert len(pictures) == 2 and base64.b64decode(made.json()["images"][0]) == pictures[1].read_bytes()

        for bad in ("../jobs.db", "..%2Fjobs.db", f"{saved.parent.name}/.keypaint-00000.claim",
                    f"{saved.parent.name}/missing.png"):
            assert client.get(f"/files/{bad}").status_code == 404
    assert not (tmp_path / "local").exists()  # nothing written to the local default folder
