"""DreamBooth's prior preservation (Ruiz et al. 2023): keep the class while learning one subject of it.

Each step also trains on pictures of the plain class ("dog", "emoji") that the base model painted itself,
so the new word takes the subject without the class word drifting to it ("language drift"). Missing class
pictures are painted once into the class folder and reused by later runs; existing files are never
overwritten. A class picture with a same-name .txt is trained with that caption instead of the class prompt,
so a folder of the base model's own pictures of many subjects can serve as the prior (for a style).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from keypaint.data.folder import IMAGE_SUFFIXES
from keypaint.models.loaded import LoadedModel

CLASS_STEPS = 25  # denoising steps for each class picture


def class_pictures(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_caption(path: Path, class_prompt: str) -> str:
    """The picture's own caption (same-name .txt) if it has one, else the class prompt."""
    text = path.with_suffix(".txt")
    if text.is_file():
        caption = " ".join(text.read_text(encoding="utf-8").split())
        if caption:
            return caption
    return class_prompt


def make_class_pictures(
    model: LoadedModel,
    folder: Path,
    prompt: str,
    count: int,
    *,
    seed: int,
    on_picture: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Ensure `folder` holds `count` class pictures, painting the missing ones with the base model."""
    from keypaint.core.painter import Painter
    from keypaint.core.params import GenerationParams

    have = class_pictures(folder)
    missing = count - len(have)
    if missing <= 0:
        return have[:count]
    folder.mkdir(parents=True, exist_ok=True)
    painter = Painter(model)
    taken = {p.name for p in have}
    number = 0
    for i in range(missing):
        params = GenerationParams(prompt=prompt, seed=seed + len(have) + i, steps=CLASS_STEPS)
        [result] = painter.generate(params)
        while f"class-{number:05d}.png" in taken:
            number += 1
        path = folder / f"class-{number:05d}.png"
        taken.add(path.name)
        with path.open("xb") as handle:  # "x": fail rather than replace a file that appeared meanwhile
            result.image.save(handle, format="PNG")
        if on_picture is not None:
            on_picture(i + 1, missing)
    return class_pictures(folder)[:count]
