"""Read a captioned image folder for training, whatever made it.

Two layouts are accepted:
- HF `imagefolder`: `metadata.jsonl` with `file_name` and `text` per line (extra keys kept as fields),
  either in the folder itself or in its `train/` subfolder;
- images with a same-name `.txt` caption beside each (`cat.png` + `cat.txt`), searched recursively.
Anything else fails with a message naming the file, before any training starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image, UnidentifiedImageError

from keypaint.data.errors import DataError
from keypaint.errors import ImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"})
METADATA = "metadata.jsonl"


class Record(NamedTuple):
    """One training example: an image file, its caption, and any other metadata fields."""

    path: Path
    caption: str
    fields: dict[str, Any]


def load_folder(folder: str | Path, *, split: str | None = None, check_images: bool = True) -> list[Record]:
    """All records of `folder` (or of `folder/split`), in file order; raises DataError/ImageError."""
    root = Path(folder)
    if split is not None:
        root = root / split
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    if (root / "metadata.csv").is_file() and not (root / METADATA).is_file():
        raise DataError(f"{root / 'metadata.csv'}: only metadata.jsonl is supported, one JSON object a line")
    if (root / METADATA).is_file():
        records = _read_metadata(root / METADATA)
    elif split is None and (root / "train" / METADATA).is_file():
        records = _read_metadata(root / "train" / METADATA)
    else:
        records = _read_txt_captions(root)
    if check_images:
        for record in records:
            check_image(record.path)
    return records


def _read_metadata(metadata: Path) -> list[Record]:
    base = metadata.parent
    records: list[Record] = []
    seen: set[str] = set()
    with metadata.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{metadata}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object with file_name and text")
            name, text = row.get("file_name"), row.get("text")
            if not isinstance(name, str) or not name:
                raise DataError(f"{where}: missing `file_name`")
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{where}: missing caption `text` for {name}")
            if name in seen:
                raise DataError(f"{where}: {name} is listed twice")
            seen.add(name)
            path = base / name
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{where}: {name} is not an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
            if not path.is_file():
                raise DataError(f"{where}: image {path} does not exist")
            fields = {k: v for k, v in row.items() if k not in ("file_name", "text")}
            records.append(Record(path, text.strip(), fields))
    if not records:
        raise DataError(f"{metadata}: no images listed")
    return records


def _read_txt_captions(root: Path) -> list[Record]:
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise DataError(
            f"{root}: no images found; expected {METADATA} (file_name + text per line) "
            "or images with same-name .txt captions"
        )
    records = []
    for image in images:
        caption_file = image.with_suffix(".txt")
        if not caption_file.is_file():
            raise DataError(f"{image}: no caption; write it in {caption_file.name} beside the image")
        try:
            caption = caption_file.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError as exc:
            raise DataError(f"{caption_file}: not UTF-8 text") from exc
        if not caption:
            raise DataError(f"{caption_file}: empty caption for {image.name}")
        records.append(Record(image, caption, {}))
    return records


def check_image(path: Path) -> None:
    """Decode the header and data checksums now, so a bad file fails here and not mid-training."""
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: unreadable image ({exc})") from exc
