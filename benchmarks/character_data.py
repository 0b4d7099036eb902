"""The character benchmark's pictures: characters the built-in model never saw, 5 pictures each (issue 18).

    python benchmarks/character_data.py --emoji /work/data/emoji --out .gpu/character

A character is one real emoji picture of a subject wearing an accessory cut from another real emoji
picture: noto's cat face with noto's crown, tilted; noto's dog face with noto's top hat. The built-in
model was trained on both pictures, never on the pair. Each is cut out of its white page (the white
region that touches the border), the accessory is scaled to a share of the face's width, tilted, and
set on the top of the head. From the one character sprite, 5 training pictures of 128 px are made with
different scales, positions and crops (one close-up cut off by the frame) on a white page and on four
plain pale colours, captioned with the class alone ("cat face"): `keypaint finetune` adds the token
itself ("cat face, TOKEN"; DreamBooth: "cat face, TOKEN cat face").

With `--framing emoji` the 5 pictures keep the built-in model's own framing instead: the face's picture
as the emoji data has it, the accessory pasted on its head with a little jitter of size, tilt and place,
on white (the model's denoiser knows no other framing: docs/finetune.md, "Characters").

The two source pictures are copied beside each character (`NAME/sources/`). It also copies 20 real
training pictures of each of the 10 styles (any subject): the style check of
`benchmarks/character.py` is first tried on them. Everything is drawn from one seeded generator, so a
rerun writes the same bytes; the output (about 1 MB) is all a GPU machine needs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

SIZE = 128
PICTURES = 5
REAL_PER_STYLE = 20
WHITE = 248  # a pixel whose every channel is at least this is page, when it touches the border
PALE = ((214, 234, 248), (252, 243, 207), (213, 245, 227), (250, 219, 216), (232, 218, 239), (253, 235, 208))
# (longest side of the character / picture side) of the 5 pictures; above 1 the frame cuts it off
SCALES = (0.92, 0.78, 0.64, 0.84, 1.2)


@dataclass(frozen=True)
class Character:
    """A subject of one style wearing an accessory of one style; `token` calls it up after training."""

    name: str
    token: str
    subject: str  # the emoji label of the face: also the class and the training caption
    subject_style: str
    accessory: str
    accessory_style: str
    accessory_width: float  # the accessory's width as a share of the face's
    tilt: float  # degrees, counter-clockwise
    overlap: float  # share of the accessory's height that sits over the face


CHARACTERS = (
    Character("crowned-cat", "zqvex", "cat face", "noto", "crown", "noto", 0.62, 14.0, 0.3),
    Character("top-hat-dog", "zqmur", "dog face", "noto", "top hat", "noto", 0.55, -10.0, 0.25),
)


def cut_out(image: Image.Image) -> Image.Image:
    """RGBA: the picture with its white page (near-white pixels connected to the border) transparent,
    cropped to what is left."""
    rgb = np.asarray(image.convert("RGB"))
    light = rgb.min(axis=2) >= WHITE
    regions, _ = ndimage.label(light)
    border = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    page = np.isin(regions, border[border > 0])
    alpha = np.where(page, 0, 255).astype(np.uint8)
    out = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    box = out.getbbox()
    if box is None:
        raise ValueError("the picture is all white page")
    return out.crop(box)


def compose(face: Image.Image, accessory: Image.Image, character: Character) -> Image.Image:
    """The character sprite (RGBA, cropped): the accessory scaled, tilted and set on the face's top."""
    width = max(1, round(face.width * character.accessory_width))
    height = max(1, round(accessory.height * width / accessory.width))
    hat = accessory.resize((width, height), Image.Resampling.LANCZOS)
    hat = hat.rotate(character.tilt, resample=Image.Resampling.BICUBIC, expand=True)
    top = hat.height - round(height * character.overlap)  # where the face starts on the sprite
    sprite = Image.new("RGBA", (max(face.width, hat.width), top + face.height), (0, 0, 0, 0))
    sprite.alpha_composite(face, ((sprite.width - face.width) // 2, top))
    # a little off centre, towards the side the hat leans to, as a hat sits
    shift = round(-np.sign(character.tilt) * face.width * 0.08)
    x = min(max(0, (sprite.width - hat.width) // 2 + shift), sprite.width - hat.width)
    sprite.alpha_composite(hat, (x, 0))
    return sprite.crop(sprite.getbbox())


def place(
    sprite: Image.Image, scale: float, background: tuple[int, int, int], rng: random.Random
) -> Image.Image:
    """One training picture: the sprite at `scale` of the side, at a random place that keeps it in the
    frame (or, when larger than the frame, a random crop of it), on a plain page."""
    factor = scale * SIZE / max(sprite.size)
    size = (max(1, round(sprite.width * factor)), max(1, round(sprite.height * factor)))
    scaled = sprite.resize(size, Image.Resampling.LANCZOS)
    page = Image.new("RGB", (SIZE, SIZE), background)
    x = rng.randint(min(0, SIZE - scaled.width), max(0, SIZE - scaled.width))
    y = rng.randint(min(0, SIZE - scaled.height), max(0, SIZE - scaled.height))
    page.paste(scaled, (x, y), scaled)  # the sprite's alpha as the mask; a negative corner crops it
    return page


def training_pictures(sprite: Image.Image, rng: random.Random) -> list[Image.Image]:
    """5 pictures: the first on white, the others on distinct pale colours, at `SCALES`."""
    backgrounds = [(255, 255, 255), *rng.sample(PALE, PICTURES - 1)]
    pairs = zip(SCALES, backgrounds, strict=True)
    return [place(sprite, scale, background, rng) for scale, background in pairs]


def emoji_framed(face: Image.Image, accessory: Image.Image, character: Character,
                 rng: random.Random) -> list[Image.Image]:
    """5 pictures in the built-in model's own framing: the face's picture untouched (its pixels where
    the emoji data has them), the accessory pasted on its head with a little jitter of size, tilt and
    place; white page. The model's denoiser knows only that framing (see docs/finetune.md)."""
    inked = (np.asarray(face.convert("RGB")).min(axis=2) < WHITE).astype(np.uint8) * 255
    bounds = Image.fromarray(inked).getbbox()
    if bounds is None:
        raise ValueError("the face picture is all white page")
    width_px = bounds[2] - bounds[0]
    pictures = []
    for _ in range(PICTURES):
        width = round(width_px * character.accessory_width * rng.uniform(0.9, 1.1))
        hat = accessory.resize((width, round(accessory.height * width / accessory.width)),
                               Image.Resampling.LANCZOS)
        hat = hat.rotate(character.tilt + rng.uniform(-6, 6), resample=Image.Resampling.BICUBIC, expand=True)
        x = (bounds[0] + bounds[2] - hat.width) // 2 + rng.randint(-4, 4)
        y = max(bounds[1] - round(hat.height * (1 - character.overlap)), -hat.height // 4) + rng.randint(0, 4)
        picture = face.convert("RGB")
        picture.paste(hat, (x, y), hat)
        pictures.append(picture)
    return pictures


def read_metadata(split: Path) -> list[dict]:
    lines = (split / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def find(rows: list[dict], label: str, style: str) -> dict:
    for row in rows:
        if row["label"] == label and row["style"] == style:
            return row
    raise SystemExit(f"no {style} picture of {label!r} in the emoji data")


def make_character(character: Character, train: Path, rows: list[dict], out: Path, seed: int,
                   framing: str = "varied") -> dict:
    """Write `out/NAME/train/` (5 pictures + captions) and `out/NAME/sprite.png`; returns its manifest.
    `framing`: "varied" (scales, places, a close-up, pale pages) or "emoji" (`emoji_framed`)."""
    subject, accessory = find(rows, character.subject, character.subject_style), find(
        rows, character.accessory, character.accessory_style
    )
    sprite = compose(
        cut_out(Image.open(train / subject["file_name"])),
        cut_out(Image.open(train / accessory["file_name"])),
        character,
    )
    folder = out / character.name / "train"
    folder.mkdir(parents=True)
    sprite.save(out / character.name / "sprite.png")
    for row in (subject, accessory):  # the real pictures it was made from
        (out / character.name / "sources").mkdir(exist_ok=True)
        shutil.copyfile(train / row["file_name"], out / character.name / "sources" / row["file_name"])
    rng = random.Random(f"{seed}:{character.name}")
    files = []
    if framing == "emoji":
        pictures = emoji_framed(Image.open(train / subject["file_name"]),
                                cut_out(Image.open(train / accessory["file_name"])), character, rng)
    else:
        pictures = training_pictures(sprite, rng)
    for i, picture in enumerate(pictures):
        path = folder / f"{character.name}-{i}.png"
        picture.save(path)
        path.with_suffix(".txt").write_text(character.subject + "\n", encoding="utf-8")
        files.append({"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    return {
        **asdict(character),
        "class": character.subject,
        "framing": framing,
        "sources": [subject["file_name"], accessory["file_name"]],
        "pictures": files,
    }


def copy_real_styles(train: Path, rows: list[dict], out: Path, seed: int, count: int) -> dict[str, list[str]]:
    """`count` real pictures of every style (a seeded choice) into `out/styles/STYLE/`."""
    rng = random.Random(f"{seed}:styles")
    chosen: dict[str, list[str]] = {}
    for style in sorted({row["style"] for row in rows}):
        files = sorted(row["file_name"] for row in rows if row["style"] == style)
        picked = rng.sample(files, min(count, len(files)))
        (out / "styles" / style).mkdir(parents=True)
        for name in picked:
            shutil.copyfile(train / name, out / "styles" / style / name)
        chosen[style] = picked
    return chosen


def make(emoji: Path, out: Path, seed: int = 0, characters: tuple[Character, ...] = CHARACTERS,
         real_per_style: int = REAL_PER_STYLE, framing: str = "varied") -> dict:
    """Every character's folder, the real style pictures, and `characters.json` describing them."""
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; keypaint never overwrites: choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    train = emoji / "train"
    rows = read_metadata(train)
    manifest = {
        "seed": seed,
        "emoji": str(emoji),
        "characters": [make_character(c, train, rows, out, seed, framing) for c in characters],
        "styles": copy_real_styles(train, rows, out, seed, real_per_style),
    }
    (out / "characters.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--emoji", type=Path, default=Path("/work/data/emoji"), help="`keypaint data emoji`'s folder"
    )
    parser.add_argument("--out", type=Path, default=Path(".gpu/character"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--framing", choices=["varied", "emoji"], default="varied",
                        help="varied: scales, places, a close-up, pale pages; emoji: the model's own framing")
    args = parser.parse_args()
    manifest = make(args.emoji, args.out, args.seed, framing=args.framing)
    for c in manifest["characters"]:
        sources = " + ".join(c["sources"])
        print(f"{c['name']}: {c['token']} {c['class']} <- {sources}: {args.out / c['name'] / 'train'}")


if __name__ == "__main__":
    main()
