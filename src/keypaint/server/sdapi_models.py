"""A1111's /sdapi/v1 request bodies, with A1111's field names and defaults, and their keypaint meaning.

Field names and defaults follow stable-diffusion-webui's `modules/api/models.py` (generated from
`StableDiffusionProcessing*.__init__`): steps 50, 512x512, cfg_scale 7, sampler "Euler" (its
`sampler_index` default), seed -1, n_iter 1. Unknown fields are ignored as A1111 ignores them; a null is
the field's default. The hires fix and the "Poor man's outpainting" script map to `HiresOptions` and
`Outpaint` (server.hires_fields). Known fields asking for what keypaint cannot do (face restoration,
variation seeds, other scripts, clip skip) are refused with a 422 naming the field rather than ignored, so a
client never gets a different picture than it asked for without being told.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from keypaint.core.flow import FlowOptions
from keypaint.core.params import GenerationParams
from keypaint.core.samplers import SPECS, Sampler
from keypaint.core.sizes import A1111_DEFAULT_SIZE
from keypaint.errors import InvalidParams
from keypaint.server.errors import FieldError
from keypaint.server.fields import Float, Int, Text
from keypaint.server.hires_fields import a1111_hires, a1111_outpaint
from keypaint.server.spec import JobSpec
from keypaint.server.styles import STYLES, apply_style

# GenerationParams' names -> A1111's, for errors raised by GenerationParams.validate.
A1111_NAMES = {"guidance_scale": "cfg_scale", "strength": "denoising_strength", "batch_count": "n_iter",
               "sampler": "sampler_name", "init_image": "init_images", "size": "width"}
SCHEDULERS = (("automatic", "Automatic"), ("karras", "Karras"), ("uniform", "Uniform"))
# A1111 >= 1.9 gives these samplers the Karras schedule when the scheduler is "Automatic".
_KARRAS_BY_DEFAULT = {Sampler.DPMPP_2M: Sampler.DPMPP_2M_KARRAS}
_PLAIN = {Sampler.DPMPP_2M_KARRAS: Sampler.DPMPP_2M}


class Txt2ImgRequest(BaseModel):
    """POST /sdapi/v1/txt2img."""

    model_config = ConfigDict(extra="ignore")

    prompt: Text | None = ""
    negative_prompt: Text | None = ""
    styles: list[str] | None = None
    seed: Int | None = -1
    subseed: Int | None = -1
    subseed_strength: Float | None = 0.0
    seed_resize_from_h: Int | None = -1
    seed_resize_from_w: Int | None = -1
    sampler_name: str | None = None
    sampler_index: str | None = "Euler"
    scheduler: str | None = None
    batch_size: Int | None = 1
    n_iter: Int | None = 1
    steps: Int | None = 50
    cfg_scale: Float | None = 7.0
    width: Int | None = 512
    height: Int | None = 512
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool | None = False
    do_not_save_grid: bool | None = False
    eta: Float | None = None
    denoising_strength: Float | None = None
    enable_hr: bool | None = False
    hr_scale: Float | None = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: Int | None = 0
    hr_resize_x: Int | None = 0
    hr_resize_y: Int | None = 0
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_prompt: str | None = ""
    hr_negative_prompt: str | None = ""
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool | None = True
    script_name: str | None = None
    script_args: list[Any] | None = None
    alwayson_scripts: dict[str, Any] | None = None
    send_images: bool | None = True
    save_images: bool | None = False
    force_task_id: str | None = None
    infotext: str | None = None
    distilled_cfg_scale: Float | None = None  # Forge's field: Flux dev's distilled guidance
    shift: Float | None = None  # SD3/Flux: time shift of the sampling grid

    def value(self, name: str) -> Any:
        """The field's value, a null meaning A1111's default."""
        value = getattr(self, name)
        return type(self).model_fields[name].default if value is None else value

    def job_spec(self, *, strength: float = 0.75) -> JobSpec:
        """The `JobSpec` this request asks for; `FieldError` for what keypaint cannot honour."""
        self._refuse_unsupported()
        prompt, negative = self.value("prompt"), self.value("negative_prompt")
        for style in self.styles or []:
            if style not in STYLES:
                raise FieldError("styles", f"unknown style {style!r}; known: {', '.join(STYLES)}")
            prompt, negative = apply_style(prompt, negative, style)
        overrides = self.override_settings or {}
        model = overrides.get("sd_model_checkpoint")
        if model is not None and not isinstance(model, str):
            raise FieldError("override_settings.sd_model_checkpoint", "must be a model name")
        params = GenerationParams(
            prompt=prompt,
            negative_prompt=negative,
            steps=self.value("steps"),
            guidance_scale=self.value("cfg_scale"),
            sampler=pick_sampler(self.sampler_name or self.value("sampler_index"), self.scheduler),
            seed=self.value("seed"),
            width=self.value("width"),
            height=self.value("height"),
            batch_size=self.value("batch_size"),
            batch_count=self.value("n_iter"),
            strength=strength,
            hires=a1111_hires(self) if not isinstance(self, Img2ImgRequest) else None,
            outpaint=a1111_outpaint(self.script_name, self.script_args) if isinstance(self, Img2ImgRequest)
            else None,
            flow=FlowOptions(shift=self.shift, distilled_guidance=self.distilled_cfg_scale),
        )
        return JobSpec(
            params, model=model, save=bool(self.value("save_images")),
            fit_native=(self.value("width"), self.value("height")) == (A1111_DEFAULT_SIZE,) * 2,
            request=self.model_dump(exclude={"init_images", "mask"}),
        )

    def _refuse_unsupported(self) -> None:
        refusals = {
            "enable_hr": (self.enable_hr and isinstance(self, Img2ImgRequest), "hires fix is for txt2img"),
            "restore_faces": (self.restore_faces, "face restoration is not supported by keypaint"),
            "tiling": (self.tiling, "tiling is not supported by keypaint"),
            "subseed_strength": (bool(self.subseed_strength), "variation seeds are not supported"),
            "script_name": (bool(self.script_name) and not isinstance(self, Img2ImgRequest),
                            "scripts are not supported by keypaint's txt2img"),
        }
        for field, (asked, message) in refusals.items():
            if asked:
                raise FieldError(field, message)
        clip_skip = (self.override_settings or {}).get("CLIP_stop_at_last_layers", 1)
        if clip_skip not in (1, None):
            raise FieldError("override_settings.CLIP_stop_at_last_layers", "clip skip is not supported")


class Img2ImgRequest(Txt2ImgRequest):
    """POST /sdapi/v1/img2img: txt2img's fields plus the init image, mask and strength."""

    init_images: list[str] | None = None
    mask: str | None = None
    denoising_strength: Float | None = 0.75
    inpainting_mask_invert: Int | None = 0
    resize_mode: Int | None = 0
    mask_blur: Int | None = None
    inpainting_fill: Int | None = 0
    inpaint_full_res: bool | Int | None = True
    include_init_images: bool | None = False

    def job_spec(self, *, strength: float = 0.75) -> JobSpec:
        if not self.init_images:
            raise FieldError("init_images", "img2img needs one init image")
        if len(self.init_images) > 1:
            raise FieldError("init_images", "keypaint takes one init image per request")
        if self.value("resize_mode") != 0:
            raise FieldError("resize_mode", "only 0 (just resize) is supported")
        return super().job_spec(strength=self.value("denoising_strength"))


class PngInfoRequest(BaseModel):
    image: str


def pick_sampler(name: str, scheduler: str | None) -> Sampler:
    """A1111's sampler + scheduler pair as one keypaint sampler (A1111 >= 1.9 split them)."""
    try:
        sampler = Sampler.parse(name)
    except InvalidParams:
        known = ", ".join(s.value for s in Sampler)
        raise FieldError("sampler_name", f"unknown sampler {name!r}; known: {known}") from None
    schedule = (scheduler or "automatic").strip().lower()
    if schedule == "automatic":
        return _KARRAS_BY_DEFAULT.get(sampler, sampler)
    if schedule == "karras":
        if SPECS[sampler].schedule_type == "Karras":
            return sampler
        if sampler in _KARRAS_BY_DEFAULT:
            return _KARRAS_BY_DEFAULT[sampler]
        raise FieldError("scheduler", f"{sampler.value} has no Karras schedule in keypaint; use Automatic")
    if schedule == "uniform":
        if SPECS[sampler].schedule_type == "Karras" and sampler not in _PLAIN:
            raise FieldError("scheduler", f"{sampler.value} runs on Karras sigmas only")
        return _PLAIN.get(sampler, sampler)
    known = ", ".join(label for _, label in SCHEDULERS)
    raise FieldError("scheduler", f"unknown scheduler {scheduler!r}; keypaint has {known}")
