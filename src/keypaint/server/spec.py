"""`JobSpec`: a generation request as the server stores it, and the one place it becomes params.

Both APIs (A1111's and keypaint's own) turn their request bodies into a `JobSpec` around
`GenerationParams`; the job store keeps it as `core.codec`'s JSON, and the worker reads it back for
`Painter.generate`. Checking a spec runs the same
`GenerationParams.validate` as the CLI, plus the server's pixel x step budget, before anything is queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from keypaint.core.codec import params_from_json, params_to_json
from keypaint.core.params import GenerationParams, Limits
from keypaint.errors import InvalidParams

# the params' fields in the stored job (and GET /api/jobs' "params"), in this order; best_of is not offered
SPEC_FIELDS = ("prompt", "negative_prompt", "steps", "guidance_scale", "sampler", "seed", "width", "height",
               "batch_size", "batch_count", "strength")
SPEC_ADAPTER_FIELDS = ("loras", "embeddings", "expand_keywords", "flow")


@dataclass(frozen=True)
class JobSpec:
    """One request: its `GenerationParams` without pictures (they travel beside it as bytes) and what the
    server does around it."""

    params: GenerationParams
    model: str | None = None  # None: the server's current model
    save: bool = True  # into the gallery (A1111's save_images)
    # A1111's API at its default 512x512: paint at a smaller native size and upscale (core.sizes)
    fit_native: bool = False
    request: dict[str, Any] = field(default_factory=dict)  # what the client sent, for "use again"

    def to_json(self) -> dict[str, Any]:
        """The params in `core.codec`'s JSON, with the server's fields among them."""
        return {**params_to_json(self.params, SPEC_FIELDS), "model": self.model,
                **params_to_json(self.params, SPEC_ADAPTER_FIELDS), "save": self.save,
                "fit_native": self.fit_native, "request": self.request}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        own = {"model", "save", "fit_native", "request"}
        params = params_from_json({k: v for k, v in data.items() if k not in own})
        return cls(params, **{k: v for k, v in data.items() if k in own})

    def with_pictures(self, init_image: Image.Image | None = None, mask: Image.Image | None = None
                      ) -> GenerationParams:
        """The `GenerationParams` this spec asks for, with its pictures (not yet validated)."""
        return replace(self.params, init_image=init_image, mask=mask)


def check_spec(spec: JobSpec, init_image: Image.Image | None, mask: Image.Image | None, *,
               limits: Limits, max_pixel_steps: int, native_size: int) -> GenerationParams:
    """Raise `InvalidParams` (naming the field) unless `spec` can run; cheap, no model needed."""
    params = spec.with_pictures(init_image, mask)
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
