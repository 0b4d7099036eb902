"""POST /api/verify: does a picture carry keypaint's provenance marks (watermark, C2PA)?

Mounted only when `keypaint.provenance` offers `verify_image(path)`. The picture is an upload (base64 or
data URL) or a gallery picture by id; no file name from the request is ever opened.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict

from keypaint.outputs.remote import RemoteFolder
from keypaint.server.errors import FieldError
from keypaint.server.state import ServerState


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str | None = None  # base64 or data: URL
    image_id: int | None = None  # a picture of this server's gallery


def find_verifier() -> Callable[[Path], Any] | None:
    try:
        module = importlib.import_module("keypaint.provenance.verify")
    except ImportError:
        return None
    verifier = getattr(module, "verify_image", None)
    return verifier if callable(verifier) else None


def verify_router(state: ServerState, verify_image: Callable[[Path], Any]) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["keypaint"])

    @router.post("/verify")
    def verify(body: VerifyRequest) -> dict[str, Any]:
        if (body.image is None) == (body.image_id is None):
            raise FieldError("image", "give either image (base64) or image_id")
        if body.image_id is not None:
            record = state.store.get_image(body.image_id)
            if record is None:
                raise HTTPException(404, f"no image {body.image_id}")
            if state.config.out_url is None:
                result = verify_image(state.config.out / record.path)
                return {"image_id": record.id, "result": jsonable(result)}
            raw = RemoteFolder(state.config.out_url).read(record.path)  # serve --out URL: a local copy
            if raw is None:
                raise HTTPException(404, f"image {body.image_id}'s file is gone")
            return {"image_id": record.id, "result": jsonable(_verify_bytes(verify_image, raw))}
        raw, _ = state.upload(body.image, "image")
        return {"result": jsonable(_verify_bytes(verify_image, raw))}

    return router


def _verify_bytes(verify_image: Callable[[Path], Any], raw: bytes) -> Any:
    """Verify a picture held in memory, through a private temporary file."""
    with tempfile.TemporaryDirectory(prefix="keypaint-verify-") as folder:
        path = Path(folder) / f"upload{suffix_of(raw)}"
        path.write_bytes(raw)
        return verify_image(path)


def suffix_of(raw: bytes) -> str:
    if raw.startswith(b"\x89PNG"):
        return ".png"
    if raw.startswith(b"\xff\xd8"):
        return ".jpg"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return ".webp"
    return ".img"


def jsonable(value: Any) -> Any:
    """Dataclasses (by their own `to_dict` where they have one), enums, paths and bytes as JSON."""
    if callable(getattr(value, "to_dict", None)):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
