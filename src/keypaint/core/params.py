"""`GenerationParams`: everything one generation needs, checked before any heavy work."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from PIL import Image

from keypaint.core.control import ControlUnit, validate_units
from keypaint.core.flow import FlowOptions
from keypaint.core.hires import HiresOptions
from keypaint.core.outpaint import Outpaint
from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams

MAX_SEED = 2**32 - 1
LORA_WEIGHT_LIMIT = 2.0  # a LoRA's weight lies within [-2, 2]: beyond it pictures fall apart


@dataclass(frozen=True)
class LoraRef:
    """One LoRA for a request: a `.safetensors` path or a name in `<home>/loras`, and its weight."""

    source: str
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> LoraRef:
        """ "FILE:0.8" (or "FILE", weight 1): the weight follows the last colon when that is a number."""
        source, sep, weight = text.rpartition(":")
        if sep and source and _is_number(weight):
            return cls(source.strip(), float(weight))
        return cls(text.strip())


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; the CLI and the server share these (configurable)."""

    max_pixels: int = 1536 * 1536  # width x height of one picture
    max_steps: int = 1000  # the length of the training schedule
    max_batch_size: int = 16
    max_batch_count: int = 100
    max_prompt_chars: int = 10_000
    max_best_of: int = 16
    max_adapters: int = 8  # LoRAs, and textual-inversion embeddings, per request
    max_guidance_scale: float = 30.0  # A1111's CFG slider ends here; far beyond, guidance overflows to NaN


@dataclass(frozen=True)
class GenerationParams:
    """One generation request. Front ends only build this and hand it to `Painter`."""

    prompt: str  # keywords, comma-separated; A1111 emphasis such as "(red:1.3)" works
    negative_prompt: str = ""  # keywords the picture should avoid
    steps: int = 20  # denoising steps of the reverse chain
    guidance_scale: float = 7.0  # classifier-free guidance scale; 1 turns guidance off
    sampler: Sampler = Sampler.DPMPP_2M_KARRAS
    seed: int = -1  # -1 draws a random seed, recorded in the output
    width: int | None = None  # None: the model's native size
    height: int | None = None
    batch_size: int = 1  # pictures per forward pass; item i uses seed + i
    batch_count: int = 1  # batches run one after another (seeds continue)
    init_image: Image.Image | None = field(default=None, repr=False)  # img2img / inpainting source
    strength: float = 0.75  # img2img: how far along the forward chain the init image is noised (0..1)
    mask: Image.Image | None = field(default=None, repr=False)  # inpainting: white = repaint
    best_of: int = 1  # make N candidates per picture, keep the one the scorer matches best to the keywords
    loras: tuple[LoraRef, ...] = ()  # LoRAs applied with their weights (A1111's <lora:name:w> also works)
    embeddings: tuple[str, ...] = ()  # textual-inversion files or names in <home>/embeddings
    expand_keywords: bool = True  # a keyword the model knows brings its trained tags (keywords.vocabulary)
    control_units: tuple[ControlUnit, ...] = ()  # ControlNets steering the picture (core.control)
    hires: HiresOptions | None = None  # txt2img: a second img2img pass on the upscaled picture (core.hires)
    outpaint: Outpaint | None = None  # extend the init image on its sides (core.outpaint)
    flow: FlowOptions = field(default_factory=FlowOptions)  # SD3/Flux: shift, distilled guidance (core.flow)

    @classmethod
    def from_keywords(
        cls, keywords: list[str], negative: list[str] | None = None, **kwargs: object
    ) -> GenerationParams:
        """Params from separate keywords, joined the way people type them ("red apple, fruit")."""
        return cls(prompt=join_keywords(keywords), negative_prompt=join_keywords(negative or []),
                   **kwargs)  # type: ignore[arg-type]

    @property
    def mode(self) -> str:
        """ "txt2img", "img2img", "inpaint" or "outpaint"."""
        if self.init_image is None:
            return "txt2img"
        if self.outpaint is not None:
            return "outpaint"
        return "inpaint" if self.mask is not None else "img2img"

    @property
    def total_images(self) -> int:
        return self.batch_size * self.batch_count

    def validate(self, limits: Limits = Limits()) -> None:
        """Raise `InvalidParams` naming the first field that cannot run; cheap, no model needed."""
        if not isinstance(self.prompt, str):
            raise InvalidParams("prompt", "must be text")
        if len(self.prompt) > limits.max_prompt_chars or len(self.negative_prompt) > limits.max_prompt_chars:
            raise InvalidParams("prompt", f"longer than {limits.max_prompt_chars} characters")
        _int_in("steps", self.steps, 1, limits.max_steps)
        if not isinstance(self.guidance_scale, int | float) or self.guidance_scale != self.guidance_scale:
            raise InvalidParams("guidance_scale", "must be a number")
        if self.guidance_scale < 0:
            raise InvalidParams("guidance_scale", f"must be >= 0, got {self.guidance_scale}")
        if self.guidance_scale > limits.max_guidance_scale:
            raise InvalidParams("guidance_scale",
                                f"must be at most {limits.max_guidance_scale:g}, got {self.guidance_scale:g}")
        if not isinstance(self.sampler, Sampler):
            raise InvalidParams("sampler", f"must be a Sampler, got {self.sampler!r}")
        if not isinstance(self.expand_keywords, bool):
            raise InvalidParams("expand_keywords", f"must be true or false, got {self.expand_keywords!r}")
        _int_in("seed", self.seed, -1, MAX_SEED)
        check_size(self.width, self.height, limits)
        _int_in("batch_size", self.batch_size, 1, limits.max_batch_size)
        _int_in("batch_count", self.batch_count, 1, limits.max_batch_count)
        _int_in("best_of", self.best_of, 1, limits.max_best_of)
        if not isinstance(self.strength, int | float) or not 0.0 <= self.strength <= 1.0:
            raise InvalidParams("strength", f"must be within [0, 1], got {self.strength}")
        if self.mask is not None and self.init_image is None:
            raise InvalidParams("mask", "needs an init image to paint into")
        if self.mask is not None and self.init_image is not None and self.mask.size != self.init_image.size:
            raise InvalidParams(
                "mask",
                f"size {self.mask.size[0]}x{self.mask.size[1]} does not match the init image "
                f"{self.init_image.size[0]}x{self.init_image.size[1]}",
            )
        self._validate_adapters(limits)
        if not isinstance(self.flow, FlowOptions):
            raise InvalidParams("flow", f"must be FlowOptions, got {self.flow!r}")
        self.flow.validate()
        validate_units(self.control_units)
        self._validate_hires_outpaint()

    def _validate_hires_outpaint(self) -> None:
        if self.hires is not None:
            if not isinstance(self.hires, HiresOptions):
                raise InvalidParams("hires", f"must be HiresOptions, got {self.hires!r}")
            self.hires.validate()
            if self.init_image is not None:
                raise InvalidParams("hires", "the hires fix is a second pass after txt2img; drop the init "
                                    "image")
        if self.outpaint is not None:
            if not isinstance(self.outpaint, Outpaint):
                raise InvalidParams("outpaint", f"must be Outpaint, got {self.outpaint!r}")
            self.outpaint.validate()
            if self.init_image is None:
                raise InvalidParams("outpaint", "needs an init image to extend")
            if self.mask is not None:
                raise InvalidParams("outpaint", "makes its own mask; drop the mask")

    def _validate_adapters(self, limits: Limits) -> None:
        if len(self.loras) > limits.max_adapters or len(self.embeddings) > limits.max_adapters:
            raise InvalidParams("lora", f"at most {limits.max_adapters} LoRAs and {limits.max_adapters} "
                                "embeddings per request")
        for lora in self.loras:
            check_lora(lora)
        for embedding in self.embeddings:
            if not isinstance(embedding, str) or not embedding.strip():
                raise InvalidParams("embedding", f"must name an embedding file, got {embedding!r}")

    def with_seed(self) -> GenerationParams:
        """A copy whose seed is concrete: -1 becomes a random seed that is then recorded."""
        if self.seed != -1:
            return self
        return replace(self, seed=random.SystemRandom().randrange(0, MAX_SEED - self.total_images))

    def seeds(self) -> list[int]:
        """The seed of every picture, in order: item i of the whole run uses seed + i."""
        if self.seed == -1:
            raise InvalidParams("seed", "resolve the random seed with with_seed() first")
        return [self.seed + i for i in range(self.total_images)]


def check_size(width: int | None, height: int | None, limits: Limits) -> None:
    """`InvalidParams` unless each given side is a multiple of 8 within [8, 16384] and both fit the budget."""
    for name, value in (("width", width), ("height", height)):
        if value is None:
            continue
        _int_in(name, value, 8, 16384)
        if value % 8:
            raise InvalidParams(name, f"must be a multiple of 8, got {value}")
    if width and height and width * height > limits.max_pixels:
        raise InvalidParams("size", f"{width}x{height} is over the pixel budget of {limits.max_pixels}")


def join_keywords(keywords: list[str]) -> str:
    """Separate keywords as one prompt, the way people type them: "red apple, fruit" (blanks dropped)."""
    return ", ".join(k.strip() for k in keywords if k.strip())


def check_lora(lora: object) -> None:
    """`InvalidParams` unless `lora` names a file and has a weight within [-2, 2]."""
    if not isinstance(lora, LoraRef) or not isinstance(lora.source, str) or not lora.source.strip():
        raise InvalidParams("lora", f"must name a LoRA file and a weight, got {lora!r}")
    weight = lora.weight
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight != weight:
        raise InvalidParams("lora", f"{lora.source}: weight must be a number, got {weight!r}")
    if not -LORA_WEIGHT_LIMIT <= weight <= LORA_WEIGHT_LIMIT:
        limit = f"[-{LORA_WEIGHT_LIMIT:g}, {LORA_WEIGHT_LIMIT:g}]"
        raise InvalidParams("lora", f"{lora.source}: weight {weight:g} is outside {limit}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _int_in(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParams(name, f"must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise InvalidParams(name, f"must be within [{low}, {high}], got {value}")
