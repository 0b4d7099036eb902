"""The scorer's training set, held in memory: decoded pictures plus a few caption variants per picture.

A keypaint folder (`keypaint.data.folder`) is small enough at scorer resolution (26k emoji at 64 px are
320 MB of uint8) to decode once and keep on the GPU. The text tower is frozen, so every caption a picture
can be trained with is fixed up front: its bare label (for label-only prompts) and `caption_variants`
augmented keyword captions (shuffled, tags subsampled). Each distinct text is then encoded once.
"""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from keypaint.data.captions import augment, unique_keywords
from keypaint.data.folder import Record, load_folder
from keypaint.errors import ImageError
from keypaint.scorer.model import image_to_array


@dataclass
class ScorerData:
    """Pictures and the texts each may be paired with; text variant 0 of every picture is its bare label."""

    images: torch.Tensor  # uint8 (N, S, S, 3)
    labels: list[str]  # per picture
    label_ids: torch.Tensor  # long (N,): index into `distinct_labels`
    style_ids: torch.Tensor  # long (N,): pictures of one style share an id ("" when the folder has none)
    distinct_labels: list[str]
    texts: list[str]  # every distinct text, encoded once
    text_ids: torch.Tensor  # long (N, 1 + caption_variants): index into `texts`

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> ScorerData:
        return ScorerData(
            self.images.to(device),
            self.labels,
            self.label_ids.to(device),
            self.style_ids.to(device),
            self.distinct_labels,
            self.texts,
            self.text_ids.to(device),
        )


def record_label(record: Record) -> str:
    """The `label` field, or for plain captioned folders the first keyword of the caption."""
    label = record.fields.get("label")
    if isinstance(label, str) and label.strip():
        return label.strip()
    keywords = unique_keywords(record.caption.split(","))
    return keywords[0] if keywords else record.caption


def record_style(record: Record) -> str:
    style = record.fields.get("style")
    return style if isinstance(style, str) else ""


def load_image_array(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            return image_to_array(image, size)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImageError(f"{path}: unreadable image ({err})") from err


def load_images(paths: list[Path], size: int, workers: int | None = None) -> torch.Tensor:
    """Decode and resize in threads (PIL releases the GIL while decoding); uint8 (N, size, size, 3)."""
    workers = workers or min(16, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        arrays = list(pool.map(lambda p: load_image_array(p, size), paths, chunksize=64))
    return torch.from_numpy(np.stack(arrays)) if arrays else torch.zeros(0, size, size, 3, dtype=torch.uint8)


def build_data(records: list[Record], image_size: int, caption_variants: int, seed: int) -> ScorerData:
    """Decode pictures and fix each picture's texts; deterministic for a given seed."""
    rng = random.Random(seed)
    labels = [record_label(r) for r in records]
    distinct_labels = sorted(set(labels))
    label_index = {label: i for i, label in enumerate(distinct_labels)}
    styles = sorted({record_style(r) for r in records})
    style_index = {style: i for i, style in enumerate(styles)}
    texts: list[str] = []
    text_index: dict[str, int] = {}
    rows = []
    for record, label in zip(records, labels, strict=True):
        variants = [label] + [augment(record, rng, drop_prob=0.0) for _ in range(caption_variants)]
        rows.append([text_index.setdefault(t, len(text_index)) for t in variants])
    texts = list(text_index)
    return ScorerData(
        images=load_images([r.path for r in records], image_size),
        labels=labels,
        label_ids=torch.tensor([label_index[label] for label in labels], dtype=torch.long),
        style_ids=torch.tensor([style_index[record_style(r)] for r in records], dtype=torch.long),
        distinct_labels=distinct_labels,
        texts=texts,
        text_ids=torch.tensor(rows, dtype=torch.long),
    )


def load_scorer_data(
    folder: str | Path, image_size: int, caption_variants: int = 4, seed: int = 0
) -> ScorerData:
    """Read a keypaint image folder (metadata.jsonl or .txt captions) into memory for scorer training."""
    return build_data(load_folder(folder, check_images=False), image_size, caption_variants, seed)
