"""Pictures over HTTP: base64 / data-URL uploads read safely, PNGs with their metadata sent back,
and the small live preview of a running job.

Uploads are never URLs: keypaint fetches nothing a request names. An upload's size is checked from its
header before its pixels are decoded, so a small file that claims a huge picture is refused cheaply.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from keypaint.errors import InvalidParams
from keypaint.models.loaded import ModelKind

_DATA_URL = re.compile(r"^data:(?P<mime>[\w/+.-]*)(?P<params>(;[\w=.-]+)*?)(?P<b64>;base64)?,", re.I)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://|^(file|ftp|http|https):", re.I)

# Latent -> RGB factors (the "latent2rgb" preview of A1111's "Approx cheap" and ComfyUI), for the
# scaled 4-channel latents of the SD 1.x/2.x VAE and of the SDXL VAE.
_SD_FACTORS = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350),
               (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177))
_SDXL_FACTORS = ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068),
                 (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188))
_SDXL_BIAS = (0.1084, -0.0175, -0.0011)
# Latents up to this many positions (a 256 px picture) are previewed with the model's own VAE.
VAE_PREVIEW_MAX_POSITIONS = 32 * 32
PREVIEW_SIZE = 128


def decode_upload(text: object, field: str, *, max_bytes: int, max_pixels: int) -> tuple[bytes, Image.Image]:
    """The bytes and the fully loaded picture of a base64 string or `data:` URL sent as `field`."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidParams(field, "must be a base64 picture or a data: URL")
    text = text.strip()
    match = _DATA_URL.match(text)
    if match is not None:
        if not match.group("b64"):
            raise InvalidParams(field, "data: URLs must be base64-encoded")
        text = text[match.end():]
    elif _SCHEME.match(text):
        raise InvalidParams(field, "URLs are not fetched; send the picture itself, base64-encoded")
    if len(text) * 3 // 4 > max_bytes:
        raise InvalidParams(field, f"picture is larger than {max_bytes} bytes")
    try:
        raw = base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParams(field, "is not valid base64") from None
    return raw, open_picture(raw, field, max_pixels=max_pixels)


def open_picture(raw: bytes, field: str, *, max_pixels: int) -> Image.Image:
    """Decode `raw` (PNG, JPEG, WebP ...) after checking the size its header claims."""
    try:
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidParams(field, f"{width}x{height} is over the limit of {max_pixels} pixels")
            image.load()
            return image.copy()
    except InvalidParams:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidParams(field, f"is not a readable picture ({exc.__class__.__name__})") from None


def png_bytes(image: Image.Image) -> bytes:
    """`image` as a plain PNG (previews, an inverted mask); generated pictures go through save_generated."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@torch.inference_mode()
def preview_png(latents: torch.Tensor, kind: ModelKind, vae: Any) -> bytes:
    """A small PNG of the first picture of a batch from its latents (the x_0 estimate, else x_t).

    Cheap on purpose, since it runs between denoising steps: the latent is scaled to unit spread (early
    x_t of sigma-parameterised samplers is x0 + sigma * noise with sigma >> 1), then decoded by the model's
    own VAE when the latent is small (built-in and tiny models), else mapped to RGB with the fixed
    latent->RGB factors of the SD and SDXL VAEs. As steps advance x_t approaches x0, and so does this.
    """
    latent = latents[:1].detach().float()
    spread = float(latent.std()) if latent.numel() > 1 else 1.0
    if spread > 1.0:
        latent = latent / spread
    height, width = latent.shape[-2:]
    if height * width <= VAE_PREVIEW_MAX_POSITIONS or latent.shape[1] != 4 or kind is ModelKind.KEYPAINT:
        scaling = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
        param = next(vae.parameters())
        decoded = vae.decode(latent.to(param.device, param.dtype) / scaling).sample[0].float().cpu()
        rgb = decoded.clamp(-1, 1).add(1).mul(127.5)
    else:
        factors = torch.tensor(_SDXL_FACTORS if kind is ModelKind.SDXL else _SD_FACTORS)
        rgb = torch.einsum("chw,cr->rhw", latent[0].cpu(), factors)
        if kind is ModelKind.SDXL:
            rgb = rgb + torch.tensor(_SDXL_BIAS).view(3, 1, 1)
        rgb = rgb.clamp(-1, 1).add(1).mul(127.5)
    array = rgb.round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(array, "RGB")
    scale = PREVIEW_SIZE / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.BILINEAR)
    return png_bytes(image)
