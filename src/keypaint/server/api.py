"""keypaint's own job API: queue a job and get its id at once, follow it, cancel it, page the gallery.

POST /api/jobs -> 202 {id}; GET /api/jobs/{id}; DELETE /api/jobs/{id}; GET /api/jobs/{id}/events is a
server-sent event stream ("status", "progress" with a small preview PNG as a data URL, "done");
GET /api/images pages the gallery newest first with each picture's parameters.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, StrictBool

from keypaint.core.adapters import is_name
from keypaint.core.flow import FlowOptions
from keypaint.core.params import GenerationParams, LoraRef, join_keywords
from keypaint.core.presets import apply_preset
from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams
from keypaint.keywords.syntax import keywords as split_keywords
from keypaint.server.controlnet_api import ControlField, job_units, with_control
from keypaint.server.errors import FieldError
from keypaint.server.fields import Float, Int, Text
from keypaint.server.hires_fields import HiresField, OutpaintField
from keypaint.server.job_store import FINISHED, ImageRecord, JobRecord
from keypaint.server.spec import JobSpec
from keypaint.server.state import ServerState
from keypaint.server.styles import STYLES, apply_style
from keypaint.server.uploads import b64


class LoraField(BaseModel):
    """One LoRA by its name in <home>/loras (GET /sdapi/v1/loras lists them) and its weight in [-2, 2]."""

    model_config = ConfigDict(extra="forbid")

    name: str
    weight: Float = 1.0


# JobRequest's fields that are GenerationParams fields of the same name and meaning
PARAM_FIELDS = ("steps", "guidance_scale", "seed", "width", "height", "batch_size", "batch_count", "strength",
                "expand_keywords")


class JobRequest(BaseModel):
    """POST /api/jobs. Unknown fields are a 422 here (a typo must not pass unnoticed)."""

    model_config = ConfigDict(extra="forbid")

    keywords: list[Text] | None = None  # joined with ", " into the prompt
    prompt: Text | None = None  # or the prompt itself
    negative_keywords: list[Text] | None = None
    negative_prompt: Text | None = None
    style: str | None = None  # a name from GET /api/styles
    steps: Int = 20
    guidance_scale: Float = 7.0
    sampler: str = Sampler.DPMPP_2M_KARRAS.value
    seed: Int = -1
    width: Int | None = None
    height: Int | None = None
    batch_size: Int = 1
    batch_count: Int = 1
    init_image: str | None = None  # base64 or data: URL (never a URL to fetch)
    strength: Float = 0.75
    mask: str | None = None
    model: str | None = None
    loras: list[LoraField] | None = None
    embeddings: list[str] | None = None  # names in <home>/embeddings (GET /sdapi/v1/embeddings)
    expand_keywords: StrictBool = True  # known keywords bring their trained tags (keywords.vocabulary)
    # a name from core.presets ("lcm": LCM sampler, 4 steps, CFG 1 and the built-in LCM-LoRA) filling in
    # the fields this request leaves out; it never overrides one the request gives
    preset: str | None = None
    control_units: list[ControlField] | None = None  # ControlNets by name in <home>/controlnet
    hires: HiresField | None = None  # txt2img: a second pass on the upscaled picture (server.hires_fields)
    outpaint: OutpaintField | None = None  # extend init_image on its sides
    shift: Float | None = None  # SD3/Flux: time shift of the sampling grid (core.flow)
    distilled_guidance: Float | None = None  # Flux dev: its guidance input (Forge: Distilled CFG Scale)

    def job_spec(self) -> JobSpec:
        self._check_names()
        prompt = join_keywords(self.keywords or []) or (self.prompt or "").strip()
        if not prompt:
            raise FieldError("keywords", "give some keywords (or a prompt)")
        negative = join_keywords(self.negative_keywords or []) or (self.negative_prompt or "").strip()
        if self.style is not None and self.style not in STYLES:
            raise FieldError("style", f"unknown style {self.style!r}; known: {', '.join(STYLES)}")
        prompt, negative = apply_style(prompt, negative, self.style)
        try:
            sampler = Sampler.parse(self.sampler)
        except InvalidParams as err:
            raise FieldError("sampler", str(err).split(": ", 1)[-1]) from None
        values: dict[str, Any] = {
            name: getattr(self, name) for name in PARAM_FIELDS if name in self.model_fields_set
        }
        values.update(prompt=prompt, negative_prompt=negative)
        if "sampler" in self.model_fields_set:
            values["sampler"] = sampler
        if self.loras is not None:
            values["loras"] = tuple(LoraRef(lora.name, lora.weight) for lora in self.loras)
        if self.embeddings is not None:
            values["embeddings"] = tuple(self.embeddings)
        if self.preset is not None:
            values = apply_preset(self.preset, values)
        values.update({name: field.options() for name, field in (("hires", self.hires),
                                                                 ("outpaint", self.outpaint)) if field})
        if self.shift is not None or self.distilled_guidance is not None:
            values["flow"] = FlowOptions(shift=self.shift, distilled_guidance=self.distilled_guidance)
        return JobSpec(GenerationParams(**values), model=self.model, save=True,
                       request=self.model_dump(exclude={"init_image", "mask"}))

    def _check_names(self) -> None:
        """LoRAs and embeddings by name only: a client never names a file path on the server."""
        for field, names in (("loras", [lora.name for lora in self.loras or []]),
                             ("embeddings", self.embeddings or [])):
            for name in names:
                if not is_name(name):
                    raise FieldError(field, f"{name!r}: give a name from the server's {field} folder")


class KeywordsRequest(BaseModel):
    prompt: Text


def job_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["keypaint"])
    store, worker = state.store, state.worker

    @router.post("/jobs", status_code=202)
    def submit(body: JobRequest) -> JSONResponse:
        spec = with_control(body.job_spec(), job_units(body.control_units, state))
        init_raw, init = state.upload(body.init_image, "init_image") if body.init_image else (None, None)
        mask_raw, mask = state.upload(body.mask, "mask") if body.mask else (None, None)
        spec = state.check(spec, init, mask, {"lora": "loras", "embedding": "embeddings"}, "model")
        job, _ = worker.submit("job", spec, init_image=init_raw, mask=mask_raw)
        return JSONResponse(job_json(state, job), status_code=202,
                            headers={"Location": f"/api/jobs/{job.id}"})

    @router.get("/jobs")
    def list_jobs(limit: int = Query(50, ge=1, le=500), status: str | None = None) -> dict[str, Any]:
        if status is not None and status not in ("queued", "running", *FINISHED):
            raise FieldError("status", f"unknown status {status!r}")
        return {"jobs": [job_json(state, j) for j in store.list_jobs(limit, status)]}  # type: ignore[arg-type]

    @router.get("/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        return job_json(state, _job(state, job_id))

    @router.delete("/jobs/{job_id}", status_code=202)
    def cancel(job_id: str) -> JSONResponse:
        job = _job(state, job_id)
        if job.status in FINISHED:
            return JSONResponse({**job_json(state, job), "detail": f"job already {job.status}"}, 409)
        worker.cancel(job_id)
        return JSONResponse(job_json(state, _job(state, job_id)), status_code=202)

    @router.get("/jobs/{job_id}/events")
    async def events(job_id: str, request: Request) -> StreamingResponse:
        _job(state, job_id)
        return StreamingResponse(_events(state, job_id, request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.get("/images")
    def images(offset: int = Query(0, ge=0), limit: int = Query(24, ge=1, le=200),
               job_id: str | None = None) -> dict[str, Any]:
        page, total = store.images(offset=offset, limit=limit, job_id=job_id)
        following = offset + len(page)
        return {"images": [image_json(i) for i in page], "total": total, "offset": offset,
                "next_offset": following if following < total else None}

    @router.get("/images/{image_id}")
    def image(image_id: int) -> dict[str, Any]:
        record = store.get_image(image_id)
        if record is None:
            raise HTTPException(404, f"no image {image_id}")
        return image_json(record)

    @router.get("/info")
    def info() -> dict[str, Any]:
        limits = state.config.limits
        painter = state.host.current
        return {
            "model": state.host.default_name, "native_size": painter.model.native_size,
            "models": [m.name for m in state.host.available()],
            "samplers": [s.value for s in Sampler], "default_sampler": Sampler.DPMPP_2M_KARRAS.value,
            "styles": [{"name": s.name, "keywords": list(s.keywords), "negative": list(s.negative)}
                       for s in STYLES.values()],
            "limits": {"max_pixels": limits.max_pixels, "max_steps": limits.max_steps,
                       "max_batch_size": limits.max_batch_size, "max_batch_count": limits.max_batch_count,
                       "max_prompt_chars": limits.max_prompt_chars,
                       "max_guidance_scale": limits.max_guidance_scale,
                       "max_pixel_steps": state.config.max_pixel_steps},
            "queue": {"queued": store.queued_count(), "max": state.config.max_queue},
        }

    @router.post("/keywords")
    def keywords(body: KeywordsRequest) -> dict[str, Any]:
        from keypaint.prompts.encode import token_count

        model = state.host.current.model
        used, capacity = token_count(model, body.prompt)
        # what each keyword that is no label finds by meaning (the page shows it on the keyword's chip)
        mapped = {m.keyword: {"label": m.label, "score": round(m.score, 3)}
                  for m in model.expand(body.prompt).matches}
        return {"keywords": split_keywords(body.prompt), "tokens": used, "capacity": capacity,
                "mapped": mapped}

    return router


def _job(state: ServerState, job_id: str) -> JobRecord:
    job = state.store.get_job(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


def job_json(state: ServerState, job: JobRecord) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": job.id, "kind": job.kind, "status": job.status, "created": job.created, "started": job.started,
        "finished": job.finished, "error": job.error, "request": job.spec.get("request", {}),
        "params": {k: v for k, v in job.spec.items() if k not in ("request", "control_images")},
        "info": job.info,
    }
    if job.status == "queued":
        data["position"] = state.store.position(job)
    progress = state.worker.progress_of(job.id)  # under --ray: read from the replica's rows
    if job.status == "running" and progress is not None and progress.job_id == job.id:
        data["progress"] = progress_json(progress, with_preview=False)
    if job.image_ids:
        data["images"] = [image_json(r) for i in job.image_ids if (r := state.store.get_image(i))]
    return data


def image_json(record: ImageRecord) -> dict[str, Any]:
    url = f"/files/{record.path}"
    return {
        "id": record.id, "job_id": record.job_id, "url": url, "download": f"{url}?download=1",
        "seed": record.seed, "width": record.width, "height": record.height, "infotext": record.infotext,
        "params": record.metadata.get("params", {}), "model": record.metadata.get("model", {}),
        "request": record.spec.get("request", {}), "created": record.created,
    }


def progress_json(progress: Any, *, with_preview: bool) -> dict[str, Any]:
    data = {"step": progress.step, "steps": progress.steps, "batch": progress.batch,
            "batches": progress.batches, "fraction": round(progress.fraction, 4)}
    data.update({k: v for k in ("loss", "eta_s") if (v := getattr(progress, k, None)) is not None})
    if with_preview and progress.preview is not None:
        data["preview"] = f"data:image/png;base64,{b64(progress.preview)}"
    return data


async def _events(state: ServerState, job_id: str, request: Request) -> AsyncIterator[str]:
    """Server-sent events for one job until it finishes (or the client or the server goes away)."""
    seen_version, seen_status, seen_step, seen_preview = -1, None, None, None
    idle = 0.0
    yield "retry: 1000\n\n"
    while not state.worker.stopping and not await request.is_disconnected():
        version = state.worker.version
        if version != seen_version:
            seen_version = version
            job = _job(state, job_id)
            if job.status != seen_status:
                seen_status = job.status
                yield _sse("status", job_json(state, job))
            progress = state.worker.progress_of(job_id)
            if progress is not None and progress.steps:
                key = (progress.batch, progress.step)
                if key != seen_step:  # a finished job's last step is sent too, however fast it ran
                    seen_step = key
                    fresh = progress.preview_step != seen_preview
                    seen_preview = progress.preview_step
                    yield _sse("progress", progress_json(progress, with_preview=fresh))
            if job.status in FINISHED:
                yield _sse("done", job_json(state, job))
                return
        await asyncio.sleep(0.1)
        idle += 0.1
        if idle >= 15:
            idle = 0.0
            yield ": keep-alive\n\n"


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"
