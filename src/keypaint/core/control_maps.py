"""Control images into the maps ControlNets read: resized to the picture, then preprocessed.

The preprocessors are sd-webui-controlnet's model-free ones, so no annotator weights are needed:
canny (OpenCV's Canny edge detector), scribble (its `scribble_xdog`: difference of Gaussians, Winnemöller
et al. 2012, "XDoG"), lineart (its `lineart_standard`: how much darker each pixel is than its blurred
surroundings) and inpaint (its `inpaint_only`: the picture with the masked pixels at -1, the input the
ControlNet 1.1 inpaint model was trained on).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from keypaint.core.control import ControlUnit, Preprocess, ResizeMode
from keypaint.errors import InvalidParams


@dataclass(frozen=True)
class ControlMap:
    """A unit's map: `image` to show (A1111's "detected map"), `conditioning` what the pipeline is fed."""

    image: Image.Image
    conditioning: object  # a PIL image, or for inpaint a (1, 3, H, W) tensor holding -1 where masked


def image_sha256(image: Image.Image) -> str:
    """SHA-256 of the picture's PNG encoding (no metadata): how a unit names its image in JSON."""
    return hashlib.sha256(png_bytes(image)).hexdigest()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    plain = image if image.mode in ("RGB", "RGBA", "L", "LA") else image.convert("RGBA")
    plain.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def fit(image: Image.Image, width: int, height: int, mode: ResizeMode) -> Image.Image:
    """`image` brought to width x height the way `mode` says (keeps an alpha channel)."""
    if mode is ResizeMode.JUST_RESIZE:
        return image.resize((width, height), Image.Resampling.LANCZOS)
    if mode is ResizeMode.CROP_AND_RESIZE:
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    inner = ImageOps.contain(image, (width, height), Image.Resampling.LANCZOS)
    canvas = Image.new(image.mode, (width, height))
    canvas.paste(inner, ((width - inner.width) // 2, (height - inner.height) // 2))
    return canvas


def control_map(unit: ControlUnit, width: int, height: int, mask: Image.Image | None = None) -> ControlMap:
    """The map `unit` steers a width x height picture with. `mask` (white = repaint) is the request's
    inpainting mask, which the inpaint preprocessor uses when the control image has no transparency."""
    assert unit.image is not None
    work_w, work_h = working_size(unit, width, height)
    framed = fit(unit.image, work_w, work_h, unit.resize)
    a, b = unit.thresholds
    if unit.preprocess is Preprocess.INPAINT:
        return _inpaint(framed, width, height, mask)
    rgb = np.asarray(framed.convert("RGB"))
    if unit.preprocess is Preprocess.CANNY:
        assert a is not None and b is not None
        lines = canny(rgb, a, b)
    elif unit.preprocess is Preprocess.SCRIBBLE:
        assert a is not None
        lines = scribble_xdog(rgb, a)
    elif unit.preprocess is Preprocess.LINEART:
        lines = lineart_standard(rgb)
    else:
        lines = None
    image = framed.convert("RGB") if lines is None else Image.fromarray(lines).convert("RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return ControlMap(image, image)


def working_size(unit: ControlUnit, width: int, height: int) -> tuple[int, int]:
    """Where the preprocessor runs: the picture's size, or its shape with the short side at `resolution`."""
    if unit.resolution is None:
        return width, height
    scale = unit.resolution / min(width, height)
    return max(8, round(width * scale)), max(8, round(height * scale))


def canny(rgb: np.ndarray, low: float, high: float) -> np.ndarray:
    """OpenCV's Canny edges (Canny 1986): white edges on black."""
    import cv2

    return cv2.Canny(rgb, low, high)


def scribble_xdog(rgb: np.ndarray, threshold: float) -> np.ndarray:
    """Dark strokes as white lines: where a fine blur (sigma 0.5) is darker than a coarse one (sigma 5)."""
    import cv2

    x = rgb.astype(np.float32)
    fine, coarse = cv2.GaussianBlur(x, (0, 0), 0.5), cv2.GaussianBlur(x, (0, 0), 5.0)
    darker = np.min(coarse - fine, axis=2).clip(0, 255)  # how much darker a pixel is than its surroundings
    return np.where(2 * darker > threshold, 255, 0).astype(np.uint8)


def lineart_standard(rgb: np.ndarray) -> np.ndarray:
    """Line art: darkness against a sigma-6 blur, normalised by its median over the lines, as 0..255."""
    import cv2

    x = rgb.astype(np.float32)
    intensity = np.min(cv2.GaussianBlur(x, (0, 0), 6.0) - x, axis=2).clip(0, 255)
    lines = intensity[intensity > 8]
    intensity = intensity / max(16.0, float(np.median(lines)) if lines.size else 16.0) * 127
    return intensity.clip(0, 255).astype(np.uint8)


def _inpaint(framed: Image.Image, width: int, height: int, mask: Image.Image | None) -> ControlMap:
    import torch

    if framed.mode in ("RGBA", "LA") and framed.getchannel("A").getextrema()[0] < 255:
        hole = np.asarray(framed.getchannel("A").resize((width, height))) < 128  # transparent = repaint
    elif mask is not None:
        hole = np.asarray(mask.convert("L").resize((width, height))) >= 128  # white = repaint
    else:
        raise InvalidParams("control_preprocess", "inpaint needs a mask: a control image with transparent "
                            "parts to repaint, or an inpainting mask")
    rgb = np.asarray(framed.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)).copy()
    pixels = rgb.astype(np.float32) / 255.0
    pixels[hole] = -1.0  # what control_v11p_sd15_inpaint reads as "to be painted"
    rgb[hole] = 0
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
    return ControlMap(Image.fromarray(rgb), tensor)
