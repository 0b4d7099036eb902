"""Upscaler model files in `<home>/upscalers` (ESRGAN, Real-ESRGAN, SwinIR, ... whatever spandrel reads).

A file is found by its name (its stem, as A1111 lists upscalers), never by a path a request names. Its
weights are read the way keypaint reads every checkpoint (`models.checkpoint_files`): `.safetensors`
after checking its header; a pickle (`.pth`, as most upscalers are shared) only when the user allows
pickles, and then weights-only. spandrel recognises the architecture from the state dict's keys and
builds the model; it is imported only when an upscaler model is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from keypaint.errors import InvalidParams, ModelError
from keypaint.models.checkpoint_files import (
    PICKLE_SUFFIXES,
    SAFETENSORS_SUFFIX,
    is_pickle,
    load_pickle_weights,
    load_safetensors,
    read_safetensors_header,
    refuse_pickle,
)
from keypaint.models.registry import keypaint_home

if TYPE_CHECKING:
    import torch

SUFFIXES = (SAFETENSORS_SUFFIX, *PICKLE_SUFFIXES)
MAX_PASSES = 3  # a 4x model applied at most three times (A1111 does the same), then resized


def upscalers_dir(home: Path | None = None) -> Path:
    return (home or keypaint_home()) / "upscalers"


class Upscalers:
    """The upscaler files of one keypaint home; each model is loaded once, on first use."""

    def __init__(self, home: Path | None = None, *, allow_pickle: bool = False) -> None:
        self.folder = upscalers_dir(home)
        self.allow_pickle = allow_pickle
        self._loaded: dict[tuple[Path, str], Any] = {}

    def names(self) -> list[str]:
        """The files' names (stems), sorted."""
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)

    def find(self, name: str) -> Path:
        """The file named `name` (stem or file name), checked: `InvalidParams` ("hires") or `ModelError`."""
        if Path(name).name != name or name in ("", ".", ".."):
            raise InvalidParams("hires", f"upscaler {name!r}: give a name from {self.folder}, not a path")
        matches = [p for p in (self.folder.iterdir() if self.folder.is_dir() else [])
                   if p.is_file() and p.suffix.lower() in SUFFIXES and name in (p.stem, p.name)]
        if not matches:
            known = ", ".join(["Latent", "Lanczos", "Nearest", *self.names()])
            raise InvalidParams("hires", f"no upscaler {name!r} (known: {known}; model files go in "
                                f"{self.folder})")
        path = sorted(matches, key=lambda p: p.suffix.lower() != SAFETENSORS_SUFFIX)[0]
        if is_pickle(path):
            if not self.allow_pickle:
                raise refuse_pickle(path)
        else:
            read_safetensors_header(path)
        return path

    def load(self, name: str, device: torch.device | str = "cpu") -> Any:
        """The spandrel `ImageModelDescriptor` of upscaler `name`, in eval mode on `device`."""
        path = self.find(name)
        key = (path, str(device))
        if key not in self._loaded:
            weights = load_pickle_weights(path)[0] if is_pickle(path) else load_safetensors(path)
            self._loaded[key] = load_state_dict(weights, path.name).to(device).eval()
        return self._loaded[key]


def load_state_dict(weights: dict[str, torch.Tensor], label: str) -> Any:
    """A spandrel image-to-image model from `weights`; `ModelError` for what spandrel does not read."""
    try:
        from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError
    except ImportError:
        raise ModelError("upscaler models need spandrel: pip install spandrel") from None
    except RuntimeError as err:  # torchvision built for another torch fails while spandrel imports it
        raise ModelError(f"spandrel cannot be imported here ({str(err).splitlines()[0]})") from None
    try:
        descriptor = ModelLoader().load_from_state_dict(weights)
    except UnsupportedModelError:
        raise ModelError(f"{label}: not an upscaler model spandrel knows (ESRGAN, SwinIR, ...)") from None
    if not isinstance(descriptor, ImageModelDescriptor):
        raise ModelError(f"{label}: a {descriptor.architecture.name} model, not an image upscaler")
    return descriptor


def upscale_with(model: Any, image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` through the upscaler `model` until it covers `size` (at most MAX_PASSES), then resized to
    exactly `size` with Lanczos."""
    import numpy as np
    import torch

    param = next(model.model.parameters())
    picture = image.convert("RGB")
    for _ in range(MAX_PASSES):
        if picture.width >= size[0] and picture.height >= size[1]:
            break
        pixels = torch.from_numpy(np.asarray(picture, np.float32) / 255.0).permute(2, 0, 1)[None]
        with torch.inference_mode():
            out = model(pixels.to(param.device, param.dtype)).float().clamp(0, 1)
        array = (out[0].permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
        picture = Image.fromarray(array)
    return picture if picture.size == size else picture.resize(size, Image.Resampling.LANCZOS)
