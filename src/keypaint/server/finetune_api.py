"""POST /api/finetune: learn a style or a character from a few uploaded pictures, as a queued job.

The body is multipart/form-data: `pictures` (2 or more image files, each with an optional same-name `.txt`
caption file among them), `token`, `method`, `steps`, and optionally `rank`, `lr`, `class_prompt`. All of it
is checked before anything is stored or queued: the pictures are decoded, the captions read as UTF-8, the
options checked as `keypaint finetune` checks them (`FinetuneConfig.check`), the steps against the server's
limit, and the token against the names this server already has. Then the files go into the job's own folder
(server.finetune_spec) and a job of kind "finetune" joins the same queue as the pictures; GET /api/jobs/{id}
and its events follow it. GET /api/finetune says what the form takes (methods, defaults, limits).
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from fastapi.responses import JSONResponse

from keypaint.builtin import MODEL
from keypaint.core.adapters import embeddings_dir, list_adapter_files, loras_dir
from keypaint.core.speed.options import Offload
from keypaint.data.folder import IMAGE_SUFFIXES
from keypaint.errors import InvalidParams, KeypaintError
from keypaint.finetune.config import FinetuneConfig, FinetuneError, Method
from keypaint.finetune.data import MIN_IMAGES
from keypaint.server.api import job_json
from keypaint.server.config import FINETUNE_PATH
from keypaint.server.errors import FieldError, field_error
from keypaint.server.finetune_spec import FinetuneSpec, job_folder
from keypaint.server.state import ServerState
from keypaint.server.uploads import open_picture

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_OPTION = re.compile(r"--([a-z][a-z-]*)")


@dataclass(frozen=True)
class Upload:
    """One uploaded file as it will be stored: its safe name, the name it was sent as, its bytes."""

    name: str
    sent_as: str
    data: bytes


def finetune_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["keypaint"])
    config = state.config

    @router.get("/finetune")
    def options() -> dict[str, Any]:
        """What POST /api/finetune takes: the methods (this keypaint's), defaults and this server's limits."""
        return {
            "methods": [method.value for method in Method], "default_method": FinetuneConfig.method.value,
            "default_steps": min(FinetuneConfig.steps, config.max_finetune_steps),
            "max_steps": config.max_finetune_steps, "default_rank": FinetuneConfig.rank,
            "min_pictures": MIN_IMAGES, "max_pictures": config.max_finetune_pictures,
            "max_upload_bytes": config.max_upload_bytes, "sample_every": config.finetune_sample_every,
            "unavailable": unavailable(state),
        }

    @router.post(FINETUNE_PATH.removeprefix("/api"), status_code=202)
    def submit(
        token: Annotated[str, Form(description="the new word, e.g. xyzstyle")],
        pictures: Annotated[list[UploadFile] | None, File(description="2+ pictures, same-name .txt captions")]
        = None,
        method: Annotated[str, Form(description="one of GET /api/finetune's methods")]
        = FinetuneConfig.method.value,
        steps: Annotated[int | None, Form()] = None,
        rank: Annotated[int, Form()] = FinetuneConfig.rank,
        lr: Annotated[float | None, Form()] = None,
        class_prompt: Annotated[str | None, Form(description="DreamBooth: what the pictures show")] = None,
    ) -> JSONResponse:
        refusal = unavailable(state)
        if refusal is not None:
            raise HTTPException(409, refusal)
        files = read_uploads(pictures or [], max_pictures=config.max_finetune_pictures,
                             max_pixels=config.max_image_pixels)
        try:
            Method(method)
        except ValueError:
            known = ", ".join(m.value for m in Method)
            raise FieldError("method", f"unknown method {method!r}; this server knows {known}") from None
        steps = min(FinetuneConfig.steps, config.max_finetune_steps) if steps is None else steps
        if steps > config.max_finetune_steps:
            raise FieldError("steps", f"{steps} is over this server's limit of {config.max_finetune_steps}")
        spec = FinetuneSpec(token.strip(), method, steps, rank, lr, (class_prompt or "").strip() or None,
                            model=state.host.default_name, pictures=[f.name for f in files])
        job_id = uuid.uuid4().hex
        cfg = spec.config(config.home, job_id)
        try:
            cfg.check()
        except FinetuneError as exc:
            raise _field_error(exc) from None
        clash = token_clash(state, spec.token)
        if clash is not None:
            return field_error("token", clash, 409)
        folder = job_folder(config.home, job_id)
        try:
            store_uploads(files, cfg.images)
            _plan(cfg)
            job, _ = state.worker.submit("finetune", spec, job_id=job_id)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return JSONResponse(job_json(state, job), status_code=202,
                            headers={"Location": f"/api/jobs/{job.id}"})

    return router


def unavailable(state: ServerState) -> str | None:
    """Why this server cannot fine-tune, or None: it trains the model it paints with, where it lives."""
    if not state.worker.trains:
        return ("this server hands its jobs to Ray replicas; fine-tune with keypaint finetune or a plain "
                "keypaint serve")
    options = state.host.current.options
    used = [name for name, on in (
        ("--fast", options.fast), ("--deep-cache", options.deep_cache > 1),
        ("--token-merging", options.token_merging > 0), ("--fp8-weights", options.fp8_weights),
        ("--offload", options.offload is not Offload.NONE),
    ) if on]
    if used:
        return (f"this server runs its model with {', '.join(used)}, which fine-tuning cannot train through; "
                "use keypaint finetune, or a server without them")
    return None


def read_uploads(files: list[UploadFile], *, max_pictures: int, max_pixels: int) -> list[Upload]:
    """The pictures and their captions, each checked (422 naming the file); stored names are safe and
    unique, a caption's the same as its picture's."""
    pictures: dict[str, Upload] = {}
    captions: dict[str, Upload] = {}
    for index, file in enumerate(files):
        sent = Path(file.filename or "").name
        stem, suffix = Path(sent).stem, Path(sent).suffix.lower()
        safe = _SAFE.sub("_", stem).strip("._-")[:80] or f"picture{index}"
        if suffix not in IMAGE_SUFFIXES and suffix != ".txt":
            kinds = ", ".join(sorted(IMAGE_SUFFIXES))
            raise FieldError("pictures", f"{sent or 'a file without a name'}: not a picture ({kinds}) or a "
                                         ".txt caption")
        found = captions if suffix == ".txt" else pictures
        if safe.lower() in found:
            raise FieldError("pictures", f"{sent}: two files named {found[safe.lower()].sent_as!r} and "
                                         f"{sent!r}; give each picture its own name")
        found[safe.lower()] = Upload(safe + suffix, sent, file.file.read())
    if len(pictures) < MIN_IMAGES:
        raise FieldError("pictures", f"at least {MIN_IMAGES} pictures (5-20 work best); got {len(pictures)}")
    if len(pictures) > max_pictures:
        raise FieldError("pictures", f"{len(pictures)} pictures; this server takes at most {max_pictures}")
    for picture in pictures.values():
        try:
            open_picture(picture.data, "pictures", max_pixels=max_pixels)
        except InvalidParams as exc:
            raise FieldError("pictures", f"{picture.sent_as}: {str(exc).split(': ', 1)[-1]}") from None
    for key, caption in captions.items():
        if key not in pictures:
            raise FieldError("pictures", f"{caption.sent_as}: a caption without a picture of the same name")
        try:
            caption.data.decode("utf-8")
        except UnicodeDecodeError:
            raise FieldError("pictures", f"{caption.sent_as}: captions must be UTF-8 text") from None
    return [*pictures.values(), *(Upload(Path(pictures[k].name).stem + ".txt", c.sent_as, c.data)
                                  for k, c in captions.items())]


def token_clash(state: ServerState, token: str) -> str | None:
    """What the new word would clash with on this server (a LoRA, an embedding, a queued run, a keyword of
    the model), or None."""
    home, key = state.config.home, token.lower()
    for what, folder in (("a LoRA", loras_dir(home)), ("an embedding", embeddings_dir(home)),
                         ("a LoRA", MODEL.loras)):
        if any(path.stem.lower() == key for path in list_adapter_files(folder)):
            return f"{token!r}: this server already has {what} of that name; choose another word"
    for status in ("queued", "running"):
        for job in state.store.list_jobs(500, status):  # type: ignore[arg-type]
            if job.kind == "finetune" and str(job.spec.get("token", "")).lower() == key:
                return f"{token!r}: a fine-tuning job learning that word is {status}; choose another word"
    painter = state.host.current
    vocabulary = painter.model.vocabulary if painter.loaded else None
    if vocabulary is not None and (key in vocabulary.related or any(
            key == tag.lower() for tags in vocabulary.related.values() for tag in tags)):
        return f"{token!r} is a keyword {painter.model.name} already knows; choose a rare word (e.g. zq{key})"
    return None


def store_uploads(files: list[Upload], folder: Path) -> None:
    """Write the files into a new `folder` (never over anything)."""
    folder.mkdir(parents=True)
    for file in files:
        with (folder / file.name).open("xb") as out:
            out.write(file.data)


def _plan(cfg: FinetuneConfig) -> None:
    """`keypaint finetune`'s own checks of the stored run (pictures, output file, run folder)."""
    from keypaint.finetune.train import plan

    try:
        plan(cfg)
    except KeypaintError as exc:  # the message names the server's folder: the client sees file names only
        raise FieldError("pictures", str(exc).replace(f"{cfg.images}/", "")) from None


def _field_error(exc: FinetuneError) -> FieldError:
    """`keypaint finetune`'s "--steps must be ..." as the form's "steps: must be ..."."""
    text = str(exc)
    match = re.match(r"--([a-z][a-z-]*)\s*", text)
    field = match.group(1).replace("-", "_") if match else "method"
    rest = _OPTION.sub(lambda m: m.group(1).replace("-", "_"), text[match.end():] if match else text)
    return FieldError(field, rest)
