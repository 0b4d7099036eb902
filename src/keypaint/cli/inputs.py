"""Reading the pictures a user points the CLI at, with one-line errors."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from keypaint.errors import ImageError


def read_image(path: Path, what: str) -> Image.Image:
    """Open `path` fully (so a truncated file fails here, not halfway through a generation)."""
    if not path.is_file():
        raise ImageError(f"{what} {path} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImageError(f"{what} {path} is not a readable image ({err.__class__.__name__})") from None


def parse_size(text: str) -> tuple[int, int]:
    """ "512x768" -> (512, 768); a single number means a square."""
    from keypaint.errors import InvalidParams

    parts = text.lower().replace("*", "x").split("x")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise InvalidParams("size", f"expected WIDTHxHEIGHT such as 512x512, got {text!r}") from None
    if len(numbers) == 1:
        numbers *= 2
    if len(numbers) != 2:
        raise InvalidParams("size", f"expected WIDTHxHEIGHT such as 512x512, got {text!r}")
    return numbers[0], numbers[1]
