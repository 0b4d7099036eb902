"""Training pictures in memory: decode a captioned folder once into one uint8 tensor.

The emoji set is 26k pictures of 128 px (1.3 GB as uint8), so it sits on the GPU whole and batches are
gathered by index: no data loader workers, no per-step decoding. Records come from `keypaint.data.folder`,
which checks the layout and every file before training starts.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from keypaint.data.folder import Record, load_folder
from keypaint.errors import ImageError


def load_image(path: Path, size: int) -> np.ndarray:
    """RGB uint8 (size, size, 3): transparency composited on white, centre-cropped square, resized."""
    try:
        with Image.open(path) as image:
            image.load()
            rgba = image.convert("RGBA")
    except OSError as exc:
        raise ImageError(f"{path}: unreadable image ({exc})") from exc
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    w, h = rgb.size
    side = min(w, h)
    if w != h:
        rgb = rgb.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    if side != size:
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8)


def load_pixels(records: list[Record], size: int, workers: int = 8) -> torch.Tensor:
    """All records' pictures as one uint8 tensor (N, 3, size, size), in record order."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        arrays = list(pool.map(lambda r: load_image(r.path, size), records, chunksize=64))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def to_model_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range SD's VAE works in."""
    return pixels.float().div(127.5).sub(1.0)


def load_split(data: Path, split: str | None) -> list[Record]:
    """Records of DATA (or DATA/train when it holds the metadata) or of a named split such as heldout."""
    return load_folder(data, split=split)


def heldout_records(data: Path) -> list[Record]:
    """DATA/heldout if the folder has one (as `keypaint data emoji` writes), else none."""
    folder = data / "heldout"
    if (folder / "metadata.jsonl").is_file():
        return load_folder(folder, check_images=False)
    return []
