"""`keypaint data icons` end to end, from real .tgz files to PNGs, captions, weights and licences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from keypaint.data import DataError, load_folder
from keypaint.data.balance import record_weights
from keypaint.data.iconify import load_icon_set
from keypaint.data.icons import IconDataConfig, IconDataReport, build_icons_dataset

from .conftest import BLACK_SQUARE, info, write_tgz

SETS = ("noto", "fxemoji", "tabler", "ph", "flat-color-icons")


def build(tarballs: Path, out: Path, **kwargs: object) -> IconDataReport:
    config = IconDataConfig(
        out=out, size=32, workers=1, sets=SETS, from_tarballs=tarballs, npm_cache=tarballs.parent / "unused",
        heldout_fraction=0.0,
    )
    for key, value in kwargs.items():
        setattr(config, key, value)
    return build_icons_dataset(config)


def rows(out: Path, split: str = "train") -> dict[str, dict]:
    lines = (out / split / "metadata.jsonl").read_text().splitlines()
    return {row["file_name"]: row for row in map(json.loads, lines)}


def test_icons_are_captioned_from_names_variants_and_categories(icon_tarballs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = build(icon_tarballs, out)
    train = rows(out)
    icons = {name for name, row in train.items() if row["kind"] == "icon"}
    assert icons == {
        "tabler_arrow-left.png", "tabler_arrow-left-filled.png", "tabler_flag-up.png",
        "tabler_zoom-in-magnifier-1.png", "ph_acorn.png", "ph_acorn-bold.png", "ph_acorn-duotone.png",
        "ph_acorn-fill.png", "flat-color-icons_about.png",
    }
    outline, filled = train["tabler_arrow-left.png"], train["tabler_arrow-left-filled.png"]
    assert outline["text"] == "arrow left, tabler outline style, line icon"
    assert (outline["label"], outline["style"], outline["variant"], outline["look"]) == (
        "arrow left", "tabler-outline", ["outline"], "line"
    )
    assert filled["text"] == "arrow left, tabler filled style, filled icon"
    assert train["tabler_zoom-in-magnifier-1.png"]["label"] == "zoom in magnifier"
    acorn = train["ph_acorn-duotone.png"]
    assert acorn["text"] == "acorn, food drink, ph duotone style, duotone icon"
    assert (acorn["tags"], acorn["set"], acorn["license"]) == (["food drink"], "ph", "MIT")
    assert train["ph_acorn.png"]["style"] == "ph"  # the regular drawing has no suffix
    assert train["ph_acorn-bold.png"]["look"] == "line"  # ph's bold is a thicker line
    assert train["ph_acorn-fill.png"]["style"] == "ph-filled"
    about = train["flat-color-icons_about.png"]
    assert (about["color"], about["looks"]) == (True, ["color icon"])
    assert train["noto_1f34e.png"]["kind"] == "emoji" and train["noto_1f34e.png"]["set"] == "noto"
    tabler = next(s for s in report.icons if s.prefix == "tabler")
    assert (tabler.icons, tabler.kept, dict(tabler.skipped)) == (6, 4, {"brand": 1, "file-type": 1})
    ph = next(s for s in report.icons if s.prefix == "ph")
    assert dict(ph.skipped) == {"brand": 1}  # github-logo, by its category


def test_monochrome_icons_render_black_on_white_at_emoji_size(icon_tarballs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(icon_tarballs, out)
    for name in ("tabler_arrow-left-filled.png", "noto_1f34e.png", "flat-color-icons_about.png"):
        with Image.open(out / "train" / name) as image:
            assert (image.mode, image.size) == ("RGB", (32, 32))
            assert image.getpixel((0, 0)) == (255, 255, 255)
    with Image.open(out / "train" / "tabler_arrow-left-filled.png") as image:
        assert image.getpixel((16, 16)) == (0, 0, 0)
    with Image.open(out / "train" / "flat-color-icons_about.png") as image:
        assert image.getpixel((16, 16)) == (0x21, 0x96, 0xF3)


def test_weights_give_emoji_their_share_and_each_icon_set_an_equal_one(
    icon_tarballs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    build(icon_tarballs, out, emoji_share=0.6)
    records = load_folder(out)
    weights = record_weights(records)
    assert sum(weights) / len(weights) == pytest.approx(1.0, abs=1e-4)
    share: dict[str, float] = {}
    for record, weight in zip(records, weights, strict=True):
        key = "emoji" if record.fields["kind"] == "emoji" else record.fields["set"]
        share[key] = share.get(key, 0.0) + weight / sum(weights)
    assert share["emoji"] == pytest.approx(0.6, abs=1e-4)
    assert share["tabler"] == pytest.approx(0.4 / 3, abs=1e-4) == pytest.approx(share["flat-color-icons"])


def test_limit_keeps_the_first_icons_of_each_set(icon_tarballs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = build(icon_tarballs, out, limit=2, sets=("tabler", "ph"))
    assert sorted(rows(out)) == ["ph_acorn-bold.png", "ph_acorn.png", "tabler_arrow-left-filled.png",
                                 "tabler_arrow-left.png"]
    assert report.emoji == [] and report.emojibase is None  # no emoji set named: emojibase not needed
    assert [s.kept for s in report.icons] == [4, 4]  # the full sets' sizes are still counted


def test_heldout_split_is_by_label_and_style(icon_tarballs: Path, tmp_path: Path) -> None:
    report = build(icon_tarballs, tmp_path / "out", heldout_fraction=0.5)
    train, heldout = rows(tmp_path / "out"), rows(tmp_path / "out", "heldout")
    assert train and heldout and not train.keys() & heldout.keys()
    assert report.images == len(train) + len(heldout)


def test_sources_and_licenses_record_every_set(icon_tarballs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(icon_tarballs, out)
    sources = json.loads((out / "sources.json").read_text())
    assert sources["generator"] == "keypaint data icons"
    by_prefix = {s["prefix"]: s for s in sources["icon_sets"]}
    assert by_prefix["tabler"]["version"] == "1.2.41" and len(by_prefix["tabler"]["sha256"]) == 64
    assert by_prefix["ph"]["styles"] == {"ph": 1, "ph-bold": 1, "ph-duotone": 1, "ph-filled": 1}
    assert [s["style"] for s in sources["sets"]] == ["noto", "fxemoji"]
    licenses = (out / "LICENSES.md").read_text()
    assert "`@iconify-json/tabler@1.2.41`" in licenses and "`@iconify-json/noto@1.2.9`" in licenses
    assert "tabler filled style, tabler outline style" in licenses and "emojibase-data@17.0.0" in licenses


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("tabler", "fluent-emoji-high-contrast"), "fluent-emoji-high-contrast is excluded: the style-lea"),
        (("emojione-monotone",), "emojione-monotone is excluded"),
        (("simple-icons",), "simple-icons is excluded: a brand/logo set"),
        (("tabler", "comic-sans"), "unknown set comic-sans"),
        ((), "no set named"),
    ],
)
def test_bad_sets_fail_before_any_work(
    icon_tarballs: Path, tmp_path: Path, sets: tuple[str, ...], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        build(icon_tarballs, tmp_path / "out", sets=sets, from_tarballs=tmp_path / "nowhere")
    assert not (tmp_path / "out").exists()


def test_an_existing_folder_with_files_is_never_written(icon_tarballs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        build(icon_tarballs, out, from_tarballs=tmp_path / "nowhere")  # refused before looking for tarballs
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    (out / "notes.txt").unlink()
    build(icon_tarballs, out, sets=("tabler",))  # an empty folder is fine
    with pytest.raises(DataError, match="not empty"):
        build(icon_tarballs, out, sets=("tabler",))


def test_an_evaluation_set_is_refused_even_under_another_name(icon_tarballs: Path, tmp_path: Path) -> None:
    disguised = icon_tarballs / "iconify-json-tabler-1.2.41.tgz"
    icons = {"prefix": "fluent-emoji-high-contrast", "icons": {"red-apple": {"body": BLACK_SQUARE}}}
    write_tgz(disguised, {
        "package.json": {"name": "@iconify-json/fluent-emoji-high-contrast", "version": "1.2.41"},
        "icons.json": icons,
        "info.json": info("Fluent Emoji High Contrast", "MIT", "Microsoft"),
    })
    assert load_icon_set(disguised).prefix == "fluent-emoji-high-contrast"
    with pytest.raises(DataError, match=r"holds .*fluent-emoji-high-contrast, which is excluded"):
        build(icon_tarballs, tmp_path / "out", sets=("tabler",))
    assert not (tmp_path / "out").exists()
