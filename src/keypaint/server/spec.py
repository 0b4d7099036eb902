"""`JobSpec`: a generation request as the server stores it, and the one place it becomes params.

Both APIs (A1111's and keypaint's own) turn their request bodies into a `JobSpec`; the worker turns a
spec back into `GenerationParams` for `Painter.generate`. Checking a spec runs the same
`GenerationParams.validate` as the CLI, plus the server's pixel x step budget, before anything is queued.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from PIL import Image

from keypaint.core.params import GenerationParams, Limits, LoraRef
from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams


@dataclass(frozen=True)
class JobSpec:
    """One request, JSON-ready (pictures travel beside it as bytes)."""

    prompt: str
    negative_prompt: str = ""
    steps: int = 20
    guidance_scale: float = 7.0
    sampler: str = Sampler.DPMPP_2M_KARRAS.value
    seed: int = -1
    width: int | None = None  # None: the model's native size
    height: int | None = None
    batch_size: int = 1
    batch_count: int = 1
    strength: float = 0.75  # img2img only
    model: str | None = None  # None: the server's current model
    loras: list[tuple[str, float]] = field(default_factory=list)  # (name in <home>/loras, weight)
    embeddings: list[str] = field(default_factory=list)  # names in <home>/embeddings
    expand_keywords: bool = True  # known keywords bring their trained tags
    save: bool = True  # into the gallery (A1111's save_images)
    # A1111's API at its default 512x512: paint at a smaller native size and upscale (core.sizes)
    fit_native: bool = False
    request: dict[str, Any] = field(default_factory=dict)  # what the client sent, for "use again"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def params(self, init_image: Image.Image | None = None, mask: Image.Image | None = None
               ) -> GenerationParams:
        """The `GenerationParams` this spec asks for (not yet validated)."""
        return GenerationParams(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            steps=self.steps,
            guidance_scale=self.guidance_scale,
            sampler=Sampler.parse(self.sampler),
            seed=self.seed,
            width=self.width,
            height=self.height,
            batch_size=self.batch_size,
            batch_count=self.batch_count,
            init_image=init_image,
            strength=self.strength,
            mask=mask,
            loras=tuple(LoraRef(str(name), float(weight)) for name, weight in self.loras),
            embeddings=tuple(self.embeddings),
            expand_keywords=self.expand_keywords,
        )


def check_spec(spec: JobSpec, init_image: Image.Image | None, mask: Image.Image | None, *,
               limits: Limits, max_pixel_steps: int, native_size: int) -> GenerationParams:
    """Raise `InvalidParams` (naming the field) unless `spec` can run; cheap, no model needed."""
    params = spec.params(init_image, mask)
    params.validate(limits)
    width = params.width or (init_image.width if init_image is not None else native_size)
    height = params.height or (init_image.height if init_image is not None else native_size)
    if width * height > limits.max_pixels:
        raise InvalidParams("size", f"{width}x{height} is over the pixel budget of {limits.max_pixels}")
    work = width * height * params.steps * params.total_images
    if work > max_pixel_steps:
        raise InvalidParams(
            "steps",
            f"{width}x{height} x {params.steps} steps x {params.total_images} pictures = {work} pixel-steps, "
            f"over this server's budget of {max_pixel_steps}; ask for fewer steps, pictures or pixels",
        )
    return params
