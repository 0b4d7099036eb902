"""Picture sizes against the size a model was trained at (its native size).

A model paints well near its native size; far from it a U-Net trained on 128 px pictures gives noise at
512 px, and SD 1.x repeats its subject at 1024 px. A request that names no size gets the native size;
one far from it (a side under half or at least twice the native size) is painted as asked, with a
warning (the CLI prints it, the APIs answer it in `warnings`). A1111's API sends 512x512 when a client
sets no size: for a model with a smaller native size that request is painted at the native size and
upscaled to 512x512 with Lanczos (`upscaled`), and the picture records it ("Upscaled to", "Upscaler").
"""

from __future__ import annotations

from dataclasses import replace

from PIL import Image

from keypaint.core.result import GeneratedImage

A1111_DEFAULT_SIZE = 512  # what A1111's API paints when a request names no size
UPSCALER = "Lanczos"


def size_warning(width: int, height: int, native: int) -> str | None:
    """A warning when `width` x `height` is far from the model's `native` size, else None."""
    if all(native / 2 <= side < native * 2 for side in (width, height)):
        return None
    return (f"{width}x{height} is far from the {native}x{native} this model was trained at: expect a poor "
            f"picture (leave the size out to paint at {native}x{native})")


def paints_native_for_a1111(width: int | None, height: int | None, native: int) -> bool:
    """An A1111 request at A1111's default size, for a model with a smaller native size."""
    return width == height == A1111_DEFAULT_SIZE and native < A1111_DEFAULT_SIZE


def upscaled(result: GeneratedImage, width: int, height: int) -> GeneratedImage:
    """`result` resized to `width` x `height` with Lanczos, the resize recorded in its infotext and JSON."""
    image = result.image.resize((width, height), Image.Resampling.LANCZOS)
    extra = {**result.extra, "Upscaled to": f"{width}x{height}", "Upscaler": UPSCALER}
    return replace(result, image=image, extra=extra)
