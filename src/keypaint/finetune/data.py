"""The few pictures a fine-tune learns from: a folder of images, each with an optional `.txt` caption.

Every file is opened and checked before a model loads. Pictures of other sizes than the rest are not
refused but centre-cropped square and resized to the training size, and the run says so.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from keypaint.data.folder import IMAGE_SUFFIXES, Record
from keypaint.errors import ImageError
from keypaint.finetune.config import FinetuneError

MIN_IMAGES = 2
MAX_IMAGES = 1000


@dataclass(frozen=True)
class TrainImage:
    """One picture, its caption (empty without a .txt), its size and its hash (recorded in the output)."""

    path: Path
    caption: str
    size: tuple[int, int]
    sha256: str


@dataclass(frozen=True)
class ImageSet:
    images: list[TrainImage]

    def sizes(self) -> Counter[tuple[int, int]]:
        return Counter(image.size for image in self.images)

    def note(self, resolution: int) -> str | None:
        """What happens to pictures that are not already `resolution` px squares, said in one line."""
        sizes = self.sizes()
        odd = [size for size in sizes if size != (resolution, resolution)]
        if not odd:
            return None
        listed = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sorted(sizes.items()))
        mixed = "pictures of mixed sizes" if len(sizes) > 1 else "pictures"
        return (
            f"{mixed}: {listed}; each is centre-cropped square and resized to {resolution}x{resolution} "
            "for training"
        )

    def records(self, captions: list[str]) -> list[Record]:
        """As `keypaint.data.folder` records, for the shared latent encoder."""
        return [Record(image.path, caption, {}) for image, caption in zip(self.images, captions, strict=True)]

    def manifest(self) -> list[dict[str, str]]:
        return [{"file": image.path.name, "sha256": image.sha256} for image in self.images]


def read_images(folder: Path) -> ImageSet:
    """All pictures directly in `folder`, in name order; FinetuneError/ImageError naming the bad file."""
    if not folder.is_dir():
        raise FinetuneError(f"{folder}: not a folder of pictures")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(paths) < MIN_IMAGES:
        raise FinetuneError(
            f"{folder} has {len(paths)} picture(s); fine-tuning needs at least {MIN_IMAGES} (5-20 work best)"
        )
    if len(paths) > MAX_IMAGES:
        raise FinetuneError(f"{folder} has {len(paths)} pictures; a fine-tune takes at most {MAX_IMAGES}")
    return ImageSet([_read(path) for path in paths])


def _read(path: Path) -> TrainImage:
    data = path.read_bytes()
    try:
        with Image.open(path) as image:
            size = image.size
            image.load()  # decode fully: a truncated file fails here, not mid-training
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: unreadable image ({exc})") from exc
    caption = ""
    text = path.with_suffix(".txt")
    if text.is_file():
        try:
            caption = " ".join(text.read_text(encoding="utf-8").split())
        except UnicodeDecodeError as exc:
            raise FinetuneError(f"{text}: captions must be UTF-8 text") from exc
    return TrainImage(path, caption, size, hashlib.sha256(data).hexdigest())
