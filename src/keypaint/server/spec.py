"""`JobSpec`: a generation request as the server stores it, and the one place it becomes params.

Both APIs (A1111's and keypaint's own) turn their request bodies into a `JobSpec` around
`GenerationParams`; the job store keeps it as `core.codec`'s JSON, and the worker reads it back for
`Painter.generate`. A spec is checked by the Painter (`Painter.resolve`: the params against the limits,
adapter files, content policy, as on the CLI) and then against the server's pixel x step budget
(`check_budget`), before anything is queued.
"""

from __future__ import annotations

import io
from base64 import b64decode, b64encode
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from keypaint.core.codec import params_from_json, params_to_json
from keypaint.core.control import with_images
from keypaint.core.control_maps import png_bytes
from keypaint.core.params import GenerationParams
from keypaint.errors import InvalidParams

# the params' fields in the stored job (and GET /api/jobs' "params"), in this order; best_of is not offered
SPEC_FIELDS = ("prompt", "negative_prompt", "steps", "guidance_scale", "sampler", "seed", "width", "height",
               "batch_size", "batch_count", "strength")
SPEC_ADAPTER_FIELDS = ("loras", "embeddings", "expand_keywords", "control_units", "hires", "outpaint", "flow")
CONTROL_IMAGES = "control_images"  # the units' pictures by hash, base64 PNG: queued with the job


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
                "fit_native": self.fit_native, "request": self.request,
                CONTROL_IMAGES: {u.sha256: b64encode(png_bytes(u.image)).decode()
                                 for u in self.params.control_units if u.image is not None}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        own = {"model", "save", "fit_native", "request"}
        params = params_from_json({k: v for k, v in data.items() if k not in own and k != CONTROL_IMAGES})
        pictures = {sha: _picture(text) for sha, text in (data.get(CONTROL_IMAGES) or {}).items()}
        params = replace(params, control_units=with_images(params.control_units, pictures))
        return cls(params, **{k: v for k, v in data.items() if k in own})

    def with_pictures(self, init_image: Image.Image | None = None, mask: Image.Image | None = None
                      ) -> GenerationParams:
        """The `GenerationParams` this spec asks for, with its pictures (not yet validated)."""
        return replace(self.params, init_image=init_image, mask=mask)


def check_budget(params: GenerationParams, *, max_pixel_steps: int) -> None:
    """`InvalidParams` unless resolved `params` (`Painter.resolve`: size filled in) fit this server's
    pixel x step budget."""
    width, height = params.width, params.height
    assert width is not None and height is not None, "check_budget takes resolved params"
    work = width * height * params.steps * params.total_images
    if params.hires is not None:  # the second pass paints the bigger picture
        (cover_w, cover_h), _ = params.hires.target(width, height)
        second = params.hires.second_steps(params.steps)
        work += cover_w * cover_h * min(int(second * params.hires.strength), second) * params.total_images
    if work > max_pixel_steps:
        raise InvalidParams(
            "steps",
            f"{width}x{height} x {params.steps} steps x {params.total_images} pictures = {work} pixel-steps, "
            f"over this server's budget of {max_pixel_steps}; ask for fewer steps, pictures or pixels",
        )


def _picture(text: str) -> Image.Image:
    with Image.open(io.BytesIO(b64decode(text))) as image:
        image.load()
        return image.copy()
