"""A1111's HTTP API (/sdapi/v1/...), so existing clients, scripts and plugins work unchanged.

txt2img and img2img are synchronous as in A1111, but run through the same queue and worker as every
other job: the handler waits for its job and, if its client disconnects first, cancels it, so no work
runs that nobody will receive.
"""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from PIL import Image, ImageOps

from keypaint.core.samplers import SPECS, Sampler
from keypaint.errors import InvalidParams, KeypaintError
from keypaint.outputs.infotext import parse_infotext
from keypaint.outputs.results import save_generated
from keypaint.server.adapter_lists import embedding_list, lora_list
from keypaint.server.config import is_loopback
from keypaint.server.controlnet_api import a1111_units, detected_maps, with_control
from keypaint.server.errors import FieldError
from keypaint.server.hires_fields import LATENT_MODES, OUTPAINT_SCRIPT, upscaler_list
from keypaint.server.sdapi_models import (
    A1111_NAMES,
    SCHEDULERS,
    Img2ImgRequest,
    PngInfoRequest,
    Txt2ImgRequest,
)
from keypaint.server.spec import JobSpec
from keypaint.server.state import ServerState
from keypaint.server.styles import STYLES
from keypaint.server.uploads import b64, png_bytes
from keypaint.server.worker import Outcome
from keypaint.versions import package_version


def sdapi_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1", tags=["A1111"])

    @router.post("/txt2img")
    async def txt2img(body: Txt2ImgRequest, request: Request) -> JSONResponse:
        spec = with_control(body.job_spec(), a1111_units(body.alwayson_scripts, state))  # sd-webui-controlnet
        spec = state.check(spec, None, None, A1111_NAMES, "override_settings.sd_model_checkpoint")
        return await _run(state, request, body, spec, None, None)

    @router.post("/img2img")
    async def img2img(body: Img2ImgRequest, request: Request) -> JSONResponse:
        # decoding pictures is CPU work: off the event loop
        spec, init_raw, mask_raw = await run_in_threadpool(_img2img_job, state, body)
        return await _run(state, request, body, spec, init_raw, mask_raw)

    @router.get("/progress")
    def progress(skip_current_image: bool = False) -> dict[str, Any]:
        return _progress(state, skip_current_image)

    @router.post("/interrupt")
    def interrupt() -> dict[str, Any]:
        state.worker.interrupt()
        return {}

    @router.post("/skip")
    def skip() -> dict[str, Any]:
        state.worker.interrupt()  # keypaint stops a job as a whole
        return {}

    @router.get("/samplers")
    def samplers() -> list[dict[str, Any]]:
        return [{"name": s.value, "aliases": [s.name.lower()],
                 "options": {"scheduler": SPECS[s].schedule_type.lower()}} for s in Sampler]

    @router.get("/schedulers")
    def schedulers() -> list[dict[str, Any]]:
        return [{"name": name, "label": label, "aliases": None,
                 "default_rho": 7.0 if name == "karras" else -1.0, "need_inner_model": False}
                for name, label in SCHEDULERS]

    @router.get("/sd-models")
    def sd_models() -> list[dict[str, Any]]:
        # A1111 shows absolute paths; beyond loopback they would tell strangers about the server's disk.
        local = is_loopback(state.config.host)
        return [{"title": m.title, "model_name": m.name, "hash": m.sha256[:10] if m.sha256 else None,
                 "sha256": m.sha256, "filename": m.filename if local else Path(m.filename).name,
                 "config": None} for m in state.host.available()]

    @router.post("/refresh-checkpoints")
    def refresh_checkpoints() -> None:
        return None  # the model folder is read on every /sd-models call

    @router.get("/options")
    def get_options() -> dict[str, Any]:
        return _options(state)

    @router.post("/options")
    async def set_options(body: dict[str, Any]) -> None:
        checkpoint = body.get("sd_model_checkpoint")
        if checkpoint is None:
            return None  # other options: accepted and ignored, as A1111 ignores unknown ones
        if not isinstance(checkpoint, str):
            raise FieldError("sd_model_checkpoint", "must be a model name")
        try:
            state.host.resolve(checkpoint)
        except KeypaintError as exc:
            raise FieldError("sd_model_checkpoint", str(exc)) from None
        await run_in_threadpool(state.host.switch, checkpoint)  # waits for the running job, like A1111
        return None

    @router.get("/prompt-styles")
    def prompt_styles() -> list[dict[str, Any]]:
        return [{"name": s.name, "prompt": ", ".join(s.keywords), "negative_prompt": ", ".join(s.negative)}
                for s in STYLES.values()]

    @router.get("/sd-vae")
    def sd_vae() -> list[dict[str, Any]]:
        return []

    @router.get("/loras")
    def loras() -> list[dict[str, Any]]:
        return lora_list(state.config.home, state.host.current.model)  # as <lora:NAME:WEIGHT> in prompts

    @router.get("/embeddings")
    def embeddings() -> dict[str, Any]:
        return embedding_list(state.config.home, state.host.current.model)  # used by NAME in prompts

    @router.get("/upscalers")
    def upscalers() -> list[dict[str, Any]]:
        return upscaler_list(state.config.home)  # for hr_upscaler: Lanczos, Nearest and <home>/upscalers

    @router.get("/latent-upscale-modes")
    def latent_upscale_modes() -> list[dict[str, Any]]:
        return [{"name": name} for name in LATENT_MODES]

    @router.get("/scripts")
    def scripts() -> dict[str, Any]:
        return {"txt2img": [], "img2img": [OUTPAINT_SCRIPT]}

    @router.get("/cmd-flags")
    def cmd_flags() -> dict[str, Any]:
        return {"api": True, "listen": not is_loopback(state.config.host), "port": state.config.port}

    @router.post("/png-info")
    def png_info(body: PngInfoRequest) -> dict[str, Any]:
        raw, _ = state.upload(body.image, "image")
        with Image.open(io.BytesIO(raw)) as image:
            items = {k: v for k, v in image.info.items() if isinstance(v, str | int | float)}
        info = str(items.pop("parameters", "") or "")
        return {"info": info, "items": items, "parameters": _parsed(info)}

    return router


def _img2img_job(state: ServerState, body: Img2ImgRequest) -> tuple[JobSpec, bytes, bytes | None]:
    """The checked spec, init image and mask (inverted if asked, as A1111's inpainting_mask_invert)."""
    spec = with_control(body.job_spec(), a1111_units(body.alwayson_scripts, state))  # sd-webui-controlnet
    init_raw, init = state.upload((body.init_images or [""])[0], "init_images")
    mask_raw, mask = None, None
    if body.mask:
        mask_raw, mask = state.upload(body.mask, "mask")
        if body.value("inpainting_mask_invert") == 1:
            mask = ImageOps.invert(mask.convert("L"))
            mask_raw = png_bytes(mask)
    spec = state.check(spec, init, mask, A1111_NAMES, "override_settings.sd_model_checkpoint")
    return spec, init_raw, mask_raw


async def _run(state: ServerState, request: Request, body: Txt2ImgRequest, spec: JobSpec,
               init: bytes | None, mask: bytes | None) -> JSONResponse:
    _check_token_merging(state, body)
    job, outcome = state.worker.submit("sdapi", spec, init_image=init, mask=mask)
    assert outcome is not None
    try:
        while not outcome.done.is_set():
            if await request.is_disconnected():
                state.worker.cancel(job.id)  # nobody will read the answer: stop the work
                return JSONResponse({"error": "client disconnected"}, status_code=499)
            await asyncio.sleep(0.05)
    finally:
        state.worker.forget(job.id)
    if outcome.status == "failed":
        return JSONResponse({"error": "GenerationFailed", "detail": outcome.error}, status_code=500)
    parameters = body.model_dump(exclude={"init_images", "mask"})
    if isinstance(body, Img2ImgRequest):
        parameters.update(init_images=None, mask=None)
    images = await run_in_threadpool(encoded, outcome) if body.value("send_images") else []
    if images and spec.params.control_units:  # sd-webui-controlnet appends each unit's detected map
        first = outcome.images[0].image if outcome.images else None
        width, height = first.size if first else (spec.params.width, spec.params.height)
        images += await run_in_threadpool(detected_maps, spec.params.control_units, width, height)
    # "warnings" is keypaint's own key (A1111 clients ignore it): e.g. a size far from the model's native one
    return JSONResponse({"images": images, "parameters": parameters,
                         "info": json.dumps(_info(spec, body, outcome)), "warnings": outcome.warnings})


def encoded(outcome: Outcome) -> list[str]:
    """The pictures as base64 PNG files, written by the same `save_generated` as the gallery's (infotext,
    reproduction JSON, provenance marks); unsaved ones go through a temporary folder."""
    if outcome.paths:
        return [b64(path.read_bytes()) for path in outcome.paths]
    with tempfile.TemporaryDirectory(prefix="keypaint-sdapi-") as folder:
        return [b64(save_generated(result, Path(folder)).read_bytes()) for result in outcome.images]


def _info(spec: JobSpec, body: Txt2ImgRequest, outcome: Outcome) -> dict[str, Any]:
    """A1111's `Processed.js()` keys, for a run (interrupted runs have no pictures)."""
    results = outcome.images
    seeds = [r.seed for r in results]
    first = results[0] if results else None
    params, sampler = spec.params, spec.params.sampler
    count = len(results)
    subseed = body.value("subseed")
    return {
        "prompt": params.prompt, "all_prompts": [params.prompt] * count,
        "negative_prompt": params.negative_prompt, "all_negative_prompts": [params.negative_prompt] * count,
        "seed": seeds[0] if seeds else params.seed, "all_seeds": seeds,
        "subseed": subseed, "all_subseeds": [subseed] * count, "subseed_strength": 0,
        "width": first.image.width if first else params.width,
        "height": first.image.height if first else params.height,
        "sampler_name": SPECS[sampler].infotext_sampler, "cfg_scale": params.guidance_scale,
        "steps": params.steps,
        "batch_size": params.batch_size, "restore_faces": False, "face_restoration_model": None,
        "sd_model_name": first.model_name if first else spec.model,
        "sd_model_hash": first.model_hash[:10] if first and first.model_hash else None,
        "sd_vae_name": None, "sd_vae_hash": None, "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": (params.strength if isinstance(body, Img2ImgRequest)
                               else body.denoising_strength),
        "extra_generation_params": {"Schedule type": SPECS[sampler].schedule_type},
        "index_of_first_image": 0, "infotexts": outcome.infotexts, "styles": body.styles or [],
        "job_timestamp": datetime.now().strftime("%Y%m%d%H%M%S"), "clip_skip": 1,
        "is_using_inpainting_conditioning": False, "version": f"keypaint {package_version('keypaint')}",
        "interrupted": outcome.status == "cancelled",
    }


def _progress(state: ServerState, skip_image: bool) -> dict[str, Any]:
    progress = state.worker.progress
    queued = state.store.queued_count()
    job_state = {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "",
                 "job_count": queued, "job_timestamp": "0", "job_no": 0, "sampling_step": 0,
                 "sampling_steps": 0}
    if progress is None:
        return {"progress": 0.0, "eta_relative": 0.0, "state": job_state, "current_image": None,
                "textinfo": None}
    elapsed = time.time() - progress.started
    fraction = progress.fraction
    eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
    job_state.update(job=f"job {progress.job_id}", job_count=queued + 1, job_no=progress.batch,
                     job_timestamp=datetime.fromtimestamp(progress.started).strftime("%Y%m%d%H%M%S"),
                     sampling_step=progress.step, sampling_steps=progress.steps)
    image = None if skip_image or progress.preview is None else b64(progress.preview)
    return {"progress": round(fraction, 4), "eta_relative": round(eta, 3), "state": job_state,
            "current_image": image, "textinfo": f"step {progress.step}/{progress.steps}"}


def _check_token_merging(state: ServerState, body: Txt2ImgRequest) -> None:
    """A1111 sets token merging per request; keypaint per server: a request asking another ratio gets 422."""
    asked = (body.override_settings or {}).get("token_merging_ratio")
    served = state.config.speed.token_merging
    if asked is not None and (not isinstance(asked, int | float) or float(asked) != served):
        raise FieldError(
            "override_settings.token_merging_ratio",
            f"this server merges tokens at {served:g}, set when it starts (keypaint serve --token-merging R)",
        )


def _options(state: ServerState) -> dict[str, Any]:
    current = state.host.default_name
    info = next((m for m in state.host.available() if m.name == current), None)
    return {
        "sd_model_checkpoint": info.title if info else current,
        "sd_checkpoint_hash": info.sha256 if info else None,
        "sd_vae": "Automatic",
        "CLIP_stop_at_last_layers": 1,
        "samples_format": "png",
        "samples_save": True,
        "outdir_samples": str(state.config.out),
        "enable_pnginfo": True,
        "live_previews_enable": True,
        "show_progress_every_n_steps": 1,
        "token_merging_ratio": state.config.speed.token_merging,  # `keypaint serve --token-merging`
    }


def _parsed(infotext: str) -> dict[str, Any]:
    """A1111's `parse_generation_parameters` shape: Prompt, Negative prompt, fields, Size-1/Size-2."""
    if not infotext:
        return {}
    try:
        fields = parse_infotext(infotext)
    except (InvalidParams, ValueError):
        return {}
    result: dict[str, Any] = {"Prompt": fields.pop("prompt"),
                              "Negative prompt": fields.pop("negative_prompt")}
    result.update(fields)
    width, _, height = str(fields.get("Size", "")).partition("x")
    if width.isdigit() and height.isdigit():
        result["Size-1"], result["Size-2"] = width, height
    return result
