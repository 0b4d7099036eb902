"""Pictures in and out of the latent space, and the figure files explain writes.

Figures are drawn with matplotlib's object API (`Figure`, Agg canvas), never pyplot: no global figure state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from keypaint.errors import InvalidParams, OutputError
from keypaint.models.loaded import LoadedModel

ANIMATION_SUFFIXES = (".gif", ".webp")
LATENT_RANGE = 3.0  # latents and noise are ~N(0, 1): +-3 std maps to black..white in latent views


def encode_image(model: LoadedModel, image: Image.Image, width: int, height: int) -> torch.Tensor:
    """x_0 in latent space: z = scaling_factor * E(x), the mode of the VAE posterior (Rombach et al. 2022)."""
    pipe = model.pipe
    vae = pipe.vae
    resized = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    with torch.inference_mode():
        pixels = pipe.image_processor.preprocess(resized).to(vae.device, vae.dtype)
        latents = vae.encode(pixels).latent_dist.mode()
    return (latents * vae.config.scaling_factor).float().cpu()


def decode_latents(model: LoadedModel, latents: torch.Tensor, batch: int = 4) -> list[Image.Image]:
    """D(z / scaling_factor) for each latent, post-processed exactly as the pipelines do."""
    pipe = model.pipe
    vae = pipe.vae
    images: list[Image.Image] = []
    with torch.inference_mode():
        for start in range(0, latents.shape[0], batch):
            z = latents[start : start + batch].to(vae.device, vae.dtype) / vae.config.scaling_factor
            decoded = vae.decode(z, return_dict=False)[0]
            images.extend(pipe.image_processor.postprocess(decoded, output_type="pil"))
    return images


def latent_view(latent: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """A latent (C, h, w) seen directly: its first three channels as RGB, +-3 mapped to 0..255, upscaled."""
    channels = latent.float().cpu()
    if channels.shape[0] < 3:
        channels = channels.repeat(3, 1, 1)[:3]
    rgb = ((channels[:3] / LATENT_RANGE + 1) / 2).clamp(0, 1)
    array = (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array).resize(size, Image.Resampling.NEAREST)


def to_array(images: Sequence[Image.Image]) -> np.ndarray:
    """(N, H, W, 3) uint8, for NPZ files."""
    return np.stack([np.asarray(image.convert("RGB")) for image in images])


def prepare_output(path: Path, suffixes: Sequence[str] | None = None, what: str = "--out") -> Path:
    """Check the suffix and make the parent folder, failing with one line before any heavy work."""
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise InvalidParams(what, f"{path.name}: the file name must end in {' or '.join(suffixes)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the folder {path.parent}: {err.strerror or err}") from None
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    return path


def save_grid(
    rows: Sequence[Sequence[Image.Image | None]],
    path: Path,
    *,
    row_labels: Sequence[str] = (),
    col_labels: Sequence[str] = (),
    title: str | None = None,
    cell_inches: float = 1.4,
) -> Path:
    """A labelled grid of pictures (rows x columns; None leaves a cell empty) saved as one image file."""
    n_rows, n_cols = len(rows), max(len(row) for row in rows)
    fig = Figure(figsize=(cell_inches * n_cols + 0.6, cell_inches * n_rows + (0.5 if title else 0.2)),
                 layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            cell = rows[r][c] if c < len(rows[r]) else None
            if cell is not None:
                ax.imshow(np.asarray(cell.convert("RGB")), interpolation="nearest")
            if r == 0 and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=8)
            if c == 0 and r < len(row_labels):
                ax.set_ylabel(row_labels[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def save_figure(fig: Figure, path: Path, dpi: int = 100) -> Path:
    try:
        fig.savefig(path, dpi=dpi)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from None
    return path


def save_animation(frames: Sequence[Image.Image], path: Path, frame_ms: int = 200) -> Path:
    """An endlessly looping GIF or WebP (quality 85), the last frame held three times as long."""
    durations = [frame_ms] * (len(frames) - 1) + [frame_ms * 3]
    extra = {"quality": 85} if path.suffix.lower() == ".webp" else {"optimize": True}
    try:
        frames[0].save(path, save_all=True, append_images=list(frames[1:]), duration=durations, loop=0,
                       **extra)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from None
    return path


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    try:
        np.savez_compressed(path, **arrays)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from None
    return path


def side_by_side(images: Sequence[Image.Image], gap: int = 2) -> Image.Image:
    """Pictures of one height next to each other, for animation frames."""
    width = sum(image.width for image in images) + gap * (len(images) - 1)
    height = max(image.height for image in images)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    x = 0
    for image in images:
        canvas.paste(image.convert("RGB"), (x, 0))
        x += image.width + gap
    return canvas
