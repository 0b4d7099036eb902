"""keypaint: keywords in, picture out, with Stable Diffusion (latent diffusion).

    from keypaint import GenerationParams, Painter
    painter = Painter.load()                      # the built-in model
    [result] = painter.generate(GenerationParams(prompt="red apple", seed=1))
    result.save("apple.png")                      # marked, with its parameters

Names are imported on first use, so `import keypaint` (and the CLI's --help) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Painter": "keypaint.api",  # the core Painter, handed the built-in model, scorer and writer
    "GeneratedImage": "keypaint.core.result",
    "StepEvent": "keypaint.core.painter",
    "GenerationParams": "keypaint.core.params",
    "Limits": "keypaint.core.params",
    "Sampler": "keypaint.core.samplers",
    "KeypaintError": "keypaint.errors",
}

__all__ = [
    "GeneratedImage",
    "GenerationParams",
    "KeypaintError",
    "Limits",
    "Painter",
    "Sampler",
    "StepEvent",
    "__version__",
]

if TYPE_CHECKING:
    from keypaint.api import Painter
    from keypaint.core.painter import StepEvent
    from keypaint.core.params import GenerationParams, Limits
    from keypaint.core.result import GeneratedImage
    from keypaint.core.samplers import Sampler
    from keypaint.errors import KeypaintError


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'keypaint' has no attribute {name!r}")
