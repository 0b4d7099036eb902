"""The character benchmark's data maker on made-up emoji: cut-outs, the composed character, 5 pictures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from character_data import PALE, SIZE, Character, compose, cut_out, emoji_framed, make  # noqa: E402

RED, BLUE = (220, 30, 30), (30, 60, 200)
CHARACTER = Character("hat-ball", "zqball", "red ball", "flat", "blue hat", "flat", 0.6, 10.0, 0.3)


def ball() -> Image.Image:
    """A red disc on a white page, with a white spot inside it (which is not page)."""
    image = Image.new("RGB", (128, 128), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((14, 14, 114, 114), fill=RED)
    draw.ellipse((50, 50, 70, 70), fill="white")
    return image


def hat() -> Image.Image:
    image = Image.new("RGB", (128, 128), "white")
    ImageDraw.Draw(image).rectangle((30, 40, 98, 90), fill=BLUE)
    return image


def emoji_folder(root: Path) -> Path:
    train = root / "emoji" / "train"
    train.mkdir(parents=True)
    rows = []
    for name, label, style, picture in [
        ("ball.png", "red ball", "flat", ball()),
        ("hat.png", "blue hat", "flat", hat()),
        ("other-1.png", "red ball", "round", ball()),
        ("other-2.png", "blue hat", "round", hat()),
        ("other-3.png", "blue hat", "flat", hat()),
    ]:
        picture.save(train / name)
        rows.append(json.dumps({"file_name": name, "label": label, "style": style, "text": label}))
    (train / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return root / "emoji"


def test_cut_out_clears_the_page_and_keeps_white_inside() -> None:
    sprite = np.asarray(cut_out(ball()))
    assert sprite.shape == (101, 101, 4)  # cropped to the disc
    assert sprite[0, 0, 3] == 0 and sprite[50, 50, 3] == 255  # page gone; the white spot inside kept
    assert tuple(sprite[50, 50, :3]) == (255, 255, 255) and tuple(sprite[50, 10, :3]) == RED


def test_accessory_sits_on_top_of_the_subject() -> None:
    sprite = np.asarray(compose(cut_out(ball()), cut_out(hat()), CHARACTER))
    top, bottom = sprite[: sprite.shape[0] // 5], sprite[-sprite.shape[0] // 5 :]
    blue = (np.abs(sprite[..., :3].astype(int) - BLUE).sum(axis=2) < 60) & (sprite[..., 3] > 0)
    red = (np.abs(sprite[..., :3].astype(int) - RED).sum(axis=2) < 60) & (sprite[..., 3] > 0)
    assert blue[: len(top)].sum() > 100 and red[: len(top)].sum() < blue[: len(top)].sum()
    assert red[-len(bottom) :].sum() > 100 and blue[-len(bottom) :].sum() == 0


def test_make_writes_five_captioned_pictures_reproducibly(tmp_path: Path) -> None:
    emoji = emoji_folder(tmp_path)
    first = make(emoji, tmp_path / "a", seed=3, characters=(CHARACTER,), real_per_style=2)
    again = make(emoji, tmp_path / "b", seed=3, characters=(CHARACTER,), real_per_style=2)
    assert first["characters"][0]["pictures"] == again["characters"][0]["pictures"]  # same bytes
    other = make(emoji, tmp_path / "c", seed=4, characters=(CHARACTER,), real_per_style=2)
    assert other["characters"][0]["pictures"] != first["characters"][0]["pictures"]

    train = tmp_path / "a" / "hat-ball" / "train"
    pictures = sorted(train.glob("*.png"))
    assert len(pictures) == 5
    assert [p.with_suffix(".txt").read_text().strip() for p in pictures] == ["red ball"] * 5
    pages = []
    for path in pictures:
        image = Image.open(path)
        assert image.size == (SIZE, SIZE) and image.mode == "RGB"
        counts = image.getcolors(SIZE * SIZE)
        assert counts is not None
        pages.append(max(counts)[1])  # the commonest colour: the page
    assert pages[0] == (255, 255, 255) and all(page in PALE for page in pages[1:4])
    assert len(set(pages[:4])) == 4
    close_up = np.asarray(Image.open(pictures[4]))  # larger than the frame: the character reaches its edges
    assert (np.abs(close_up[-1].astype(int) - RED).sum(axis=1) < 60).any()

    sources = tmp_path / "a" / "hat-ball" / "sources"
    assert sorted(p.name for p in sources.iterdir()) == ["ball.png", "hat.png"]
    manifest = json.loads((tmp_path / "a" / "characters.json").read_text())
    assert manifest["characters"][0]["class"] == "red ball" and manifest["characters"][0]["token"] == "zqball"
    assert {k: len(v) for k, v in manifest["styles"].items()} == {"flat": 2, "round": 2}
    assert len(list((tmp_path / "a" / "styles" / "round").glob("*.png"))) == 2


def test_make_never_writes_into_a_used_folder(tmp_path: Path) -> None:
    emoji = emoji_folder(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not empty"):
        make(emoji, tmp_path / "out", characters=(CHARACTER,))
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_emoji_framing_keeps_the_face_where_it_was() -> None:
    import random

    face = ball()
    pictures = emoji_framed(face, cut_out(hat()), CHARACTER, random.Random(0))
    assert len(pictures) == 5 and len({p.tobytes() for p in pictures}) == 5  # jittered: all differ
    original = np.asarray(face)
    for picture in pictures:
        pixels = np.asarray(picture)
        assert pixels.shape == (SIZE, SIZE, 3)
        assert np.array_equal(pixels[70:], original[70:])  # the lower face is untouched
        assert (np.abs(pixels[:70].astype(int) - BLUE).sum(axis=2) < 60).sum() > 100  # the hat on its head
