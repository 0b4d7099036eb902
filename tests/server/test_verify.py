"""POST /api/verify: the real provenance check of gallery pictures and uploads, with path safety."""

from __future__ import annotations

from tests.server.conftest import FAST, png_b64, wait_job


def test_verify_reports_the_marks_of_gallery_pictures_and_uploads(server) -> None:  # type: ignore[no-untyped-def]
    with server.client() as client:
        job = client.post("/api/jobs", json={"keywords": ["marked"], **FAST}).json()
        image = wait_job(client, job["id"])["images"][0]
        by_id = client.post("/api/verify", json={"image_id": image["id"]})
        assert by_id.status_code == 200, by_id.text
        result = by_id.json()["result"]
        assert result["marked"] is True
        assert {result[m]["status"] for m in ("metadata", "watermark", "c2pa")} == {"found"}
        upload = client.post("/api/verify", json={"image": f"data:image/png;base64,{png_b64()}"})
        assert upload.status_code == 200, upload.text
        plain = upload.json()["result"]
        assert plain["marked"] is False and plain["metadata"]["status"] == "missing"
        assert client.post("/api/verify", json={}).status_code == 422
        assert client.post("/api/verify", json={"image_id": 999}).status_code == 404
        assert client.post("/api/verify", json={"path": "/etc/passwd"}).status_code == 422
