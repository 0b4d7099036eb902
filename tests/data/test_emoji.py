"""The emoji pipeline end to end, from real .tgz files to PNGs, metadata and licence records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from keypaint.data import DataError, EmojiDataConfig, build_emoji_dataset, is_heldout
from keypaint.data.emoji import EmojiDataReport
from keypaint.data.iconify import Icon, icon_svg
from keypaint.data.render import render_all, render_svg

FIELDS = {"file_name", "text", "label", "tags", "style", "hexcode", "group", "subgroup", "icon", "license"}


def build(tarballs: Path, out: Path, **kwargs: object) -> EmojiDataReport:
    config = EmojiDataConfig(
        out=out,
        size=32,
        workers=1,
        styles=("noto", "fxemoji"),
        from_tarballs=tarballs,
        npm_cache=tarballs.parent / "unused-cache",
    )
    for key, value in kwargs.items():
        setattr(config, key, value)
    return build_emoji_dataset(config)


def rows(out: Path) -> dict[str, list[dict]]:
    return {
        split: [json.loads(line) for line in (out / split / "metadata.jsonl").read_text().splitlines()]
        for split in ("train", "heldout")
    }


def test_builds_captioned_rgb_images_on_white(tarballs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = build(tarballs, out, heldout_fraction=0.0)
    train = {r["file_name"]: r for r in rows(out)["train"]}
    assert set(train) == {
        "noto_1f34e.png",
        "noto_1f600.png",
        "noto_2764-fe0f.png",
        "noto_1f44b.png",
        "fxemoji_1f34e.png",
        "fxemoji_1f600.png",
    }
    apple = train["noto_1f34e.png"]
    assert set(apple) == FIELDS
    assert apple["text"] == "red apple, apple, fruit, red, noto style"
    assert (apple["label"], apple["tags"], apple["style"]) == ("red apple", ["apple", "fruit", "red"], "noto")
    assert (apple["hexcode"], apple["group"], apple["license"]) == ("1F34E", "food-drink", "Apache-2.0")
    assert train["noto_1f600.png"]["icon"] == "noto:grinning-face"  # visible icon beats hidden duplicate
    for name in train:
        with Image.open(out / "train" / name) as image:
            assert (image.mode, image.size) == ("RGB", (32, 32))
            assert image.getpixel((0, 0)) == (255, 255, 255)  # transparent corners became white
    with Image.open(out / "train" / "noto_1f34e.png") as image:
        assert image.getpixel((16, 16)) == (255, 0, 0)
    with Image.open(out / "train" / "fxemoji_1f600.png") as image:  # 2:1 icon centred, white above/below
        assert image.getpixel((16, 2)) == (255, 255, 255)
        assert image.getpixel((16, 16)) == (0, 170, 0)
    noto = report.sets[0]
    assert (noto.icons, noto.matched, noto.unmatched) == (9, 8, 1)
    assert dict(noto.skipped) == {"skin_tone": 1, "keycap": 1, "flag": 1, "duplicate": 1}
    assert noto.unmatched_examples == ["rocket-ship-extra"]
    fx = report.sets[1]
    assert (fx.icons, fx.matched, fx.match_rate, fx.version) == (2, 2, 1.0, "1.0.0")


def test_sources_and_licenses_record_versions_and_licences(tarballs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(tarballs, out)
    sources = json.loads((out / "sources.json").read_text())
    assert sources["emojibase"]["version"] == "17.0.0"
    by_style = {s["style"]: s for s in sources["sets"]}
    assert by_style["noto"]["version"] == "1.2.9"
    assert by_style["fxemoji"]["tarball"] == "iconify-json-fxemoji-1.0.0.tgz"
    assert by_style["fxemoji"]["license"]["spdx"] == "CC-BY-4.0"
    assert by_style["noto"]["author"]["name"] == "Google"
    assert len(by_style["noto"]["sha256"]) == 64
    licenses = (out / "LICENSES.md").read_text()
    assert "`@iconify-json/noto@1.2.9`" in licenses
    assert "CC-BY-4.0" in licenses and "Apache-2.0" in licenses and "emojibase-data@17.0.0" in licenses


def test_heldout_split_is_deterministic_and_disjoint(tarballs: Path, tmp_path: Path) -> None:
    first = rows(build(tarballs, tmp_path / "a", heldout_fraction=0.5).out)
    second = rows(build(tarballs, tmp_path / "b", heldout_fraction=0.5).out)
    assert first == second
    train = {r["file_name"] for r in first["train"]}
    heldout = {r["file_name"] for r in first["heldout"]}
    assert train and heldout and not train & heldout
    for split, split_rows in first.items():
        for row in split_rows:
            assert is_heldout(row["hexcode"], row["style"], 0.5) == (split == "heldout")
            assert (tmp_path / "a" / split / row["file_name"]).is_file()


def test_heldout_fraction_is_about_five_percent() -> None:
    pairs = [(f"{code:X}", style) for code in range(0x1F300, 0x1F300 + 2000) for style in ("noto", "twemoji")]
    share = sum(is_heldout(h, s) for h, s in pairs) / len(pairs)
    assert 0.04 < share < 0.06
    assert is_heldout("1F34E", "noto", 0.0) is False


def test_offline_build_names_the_missing_tarball(tarballs: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"iconify-json-twemoji-1\.2\.5\.tgz"):
        build(tarballs, tmp_path / "out", styles=("noto", "twemoji"))


def test_refuses_to_overwrite_without_asking(tarballs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(tarballs, out)
    with pytest.raises(DataError, match="--overwrite"):
        build(tarballs, out)
    build(tarballs, out, overwrite=True)
    assert rows(out)["train"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("styles", ("noto", "comic-sans"), "unknown emoji set comic-sans"),
        ("size", 2, "size must be"),
        ("heldout_fraction", 1.5, "held-out fraction"),
    ],
)
def test_bad_config_fails_before_work(
    tarballs: Path, tmp_path: Path, field: str, value: object, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        build(tarballs, tmp_path / "out", **{field: value})
    assert not (tmp_path / "out").exists()


def test_corrupt_tarball_is_named(tarballs: Path, tmp_path: Path) -> None:
    (tarballs / "iconify-json-noto-1.2.9.tgz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match=r"iconify-json-noto-1\.2\.9\.tgz"):
        build(tarballs, tmp_path / "out")


def test_pool_renders_same_pixels_as_one_process(tmp_path: Path) -> None:
    svg = icon_svg(Icon("dot", '<circle cx="8" cy="8" r="4" fill="#0000ff"/>'))
    jobs = [(svg, str(tmp_path / f"{i}.png"), 24) for i in range(70)]
    jobs.append(("<svg", str(tmp_path / "broken.png"), 24))
    failed = render_all(jobs, workers=2)
    assert list(failed) == [str(tmp_path / "broken.png")]
    assert not (tmp_path / "broken.png").exists()
    with Image.open(tmp_path / "69.png") as image:
        assert image.tobytes() == render_svg(svg, 24).tobytes()
