"""POST /api/verify: uploads or gallery ids reach the verifier as files, results come back as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from keypaint.outputs.store import read_metadata
from keypaint.server.config import ServerConfig
from keypaint.server.state import ServerState
from keypaint.server.verify import find_verifier, verify_router
from tests.server.conftest import FAST, png_b64, wait_job


def test_verify_route_plumbing(serve, config: ServerConfig) -> None:  # type: ignore[no-untyped-def]
    """Mounted with keypaint's metadata reader as the verifier: a real function of a picture's path."""
    seen: list[Path] = []

    def reader(path: Path) -> Any:
        seen.append(path)
        return read_metadata(path)

    def extend(app: FastAPI, state: ServerState) -> None:
        app.include_router(verify_router(state, reader))

    running = serve(config, extend=extend)
    with running.client() as client:
        job = client.post("/api/jobs", json={"keywords": ["checked"], **FAST}).json()
        image = wait_job(client, job["id"])["images"][0]
        by_id = client.post("/api/verify", json={"image_id": image["id"]})
        assert by_id.status_code == 200, by_id.text
        assert by_id.json()["result"]["infotext"] == image["infotext"]
        upload = client.post("/api/verify", json={"image": f"data:image/png;base64,{png_b64()}"})
        assert upload.status_code == 200 and upload.json()["result"]["infotext"] is None
        assert client.post("/api/verify", json={}).status_code == 422
        assert client.post("/api/verify", json={"image_id": 999}).status_code == 404
        assert client.post("/api/verify", json={"path": "/etc/passwd"}).status_code == 422
    assert seen[0].is_relative_to(config.out.resolve()) or seen[0].is_relative_to(config.out)
    assert not seen[1].exists()  # the upload's temporary file is gone


@pytest.mark.skipif(find_verifier() is None, reason="keypaint.provenance.verify_image is not there yet")
def test_verify_is_mounted_with_provenance(server) -> None:  # type: ignore[no-untyped-def]
    with server.client() as client:
        job = client.post("/api/jobs", json={"keywords": ["marked"], **FAST}).json()
        image = wait_job(client, job["id"])["images"][0]
        response = client.post("/api/verify", json={"image_id": image["id"]})
    assert response.status_code == 200 and "result" in response.json()
