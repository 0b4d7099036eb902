"""Control images kept beside the pictures they steered, so `keypaint generate --from` re-makes them.

A picture's JSON names each ControlNet unit's image by the SHA-256 of its PNG encoding
(`core.control`); the image itself is written once as `<picture folder>/controls/<sha256>.png`. The name
is its content: a second picture with the same control image finds the file there and nothing is ever
overwritten. `--from PICTURE` looks for them in `controls/` beside PICTURE (a `--control-image` given
again replaces them).
"""

from __future__ import annotations

import hashlib
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from keypaint.core.control import with_images
from keypaint.core.control_maps import png_bytes
from keypaint.core.params import GenerationParams
from keypaint.errors import OutputError
from keypaint.outputs.files import write_new

CONTROLS = "controls"


def control_image_path(folder: Path, sha256: str) -> Path:
    return Path(folder) / CONTROLS / f"{sha256}.png"


def save_control_images(params: GenerationParams, folder: Path) -> list[Path]:
    """Write each unit's control image into `folder/controls/` unless it is there already."""
    written = []
    for unit in params.control_units:
        if unit.image is None:
            continue
        data = png_bytes(unit.image)
        path = control_image_path(folder, hashlib.sha256(data).hexdigest())
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with suppress(OutputError):  # another save wrote the same image (same name, same bytes) first
                write_new(data, path)
        written.append(path)
    return written


def load_control_images(params: GenerationParams, folder: Path) -> GenerationParams:
    """`params` with the control images its units name by hash, from `folder/controls/` where they are
    (a missing or changed file leaves its unit without: `validate` then asks for the image again)."""
    found: dict[str, Image.Image] = {}
    for unit in params.control_units:
        sha = unit.image_sha256
        path = control_image_path(folder, sha) if unit.image is None and sha else None
        if path is None or not path.is_file():
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            continue
        with suppress(UnidentifiedImageError, OSError), Image.open(path) as image:
            image.load()
            found[sha] = image.copy()
    return replace(params, control_units=with_images(params.control_units, found))
