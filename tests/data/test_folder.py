"""Reading user folders in both layouts, and the errors a user sees for each kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from keypaint.data import DataError, load_folder
from keypaint.errors import ImageError, KeypaintError


def png(path: Path, color: tuple[int, int, int] = (255, 0, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)
    return path


def jsonl(path: Path, lines: list[object]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def test_imagefolder_layout_keeps_extra_fields(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    png(tmp_path / "sub" / "b.jpg")
    jsonl(
        tmp_path / "metadata.jsonl",
        [
            {"file_name": "a.png", "text": "red apple, fruit", "label": "red apple", "tags": ["fruit"]},
            {"file_name": "sub/b.jpg", "text": " cat "},
        ],
    )
    records = load_folder(tmp_path)
    assert [(r.path, r.caption) for r in records] == [
        (tmp_path / "a.png", "red apple, fruit"),
        (tmp_path / "sub" / "b.jpg", "cat"),
    ]
    assert records[0].fields == {"label": "red apple", "tags": ["fruit"]}
    path, caption, fields = records[1]
    assert (path.name, caption, fields) == ("b.jpg", "cat", {})


def test_split_subfolders(tmp_path: Path) -> None:
    for split in ("train", "heldout"):
        png(tmp_path / split / "x.png")
        jsonl(tmp_path / split / "metadata.jsonl", [{"file_name": "x.png", "text": split}])
    assert load_folder(tmp_path)[0].caption == "train"
    assert load_folder(tmp_path, split="heldout")[0].caption == "heldout"


def test_txt_caption_layout(tmp_path: Path) -> None:
    png(tmp_path / "b.png")
    (tmp_path / "b.txt").write_text("blue, square\n", encoding="utf-8")
    png(tmp_path / "deeper" / "a.webp")
    (tmp_path / "deeper" / "a.txt").write_text("apple", encoding="utf-8")
    records = load_folder(tmp_path)
    assert [(r.path.name, r.caption, r.fields) for r in records] == [
        ("b.png", "blue, square", {}),
        ("a.webp", "apple", {}),
    ]


def bad_no_images(root: Path) -> None:
    (root / "notes.txt").write_text("hello")


def bad_missing_txt(root: Path) -> None:
    png(root / "lonely.png")


def bad_empty_txt(root: Path) -> None:
    png(root / "a.png")
    (root / "a.txt").write_text("  \n")


def bad_json(root: Path) -> None:
    png(root / "a.png")
    (root / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "x"}\n{oops\n')


def bad_missing_text(root: Path) -> None:
    png(root / "a.png")
    jsonl(root / "metadata.jsonl", [{"file_name": "a.png", "caption": "x"}])


def bad_missing_file(root: Path) -> None:
    jsonl(root / "metadata.jsonl", [{"file_name": "gone.png", "text": "x"}])


def bad_not_image(root: Path) -> None:
    (root / "a.csv").write_text("x")
    jsonl(root / "metadata.jsonl", [{"file_name": "a.csv", "text": "x"}])


def bad_twice(root: Path) -> None:
    png(root / "a.png")
    jsonl(root / "metadata.jsonl", [{"file_name": "a.png", "text": "x"}, {"file_name": "a.png", "text": "y"}])


def bad_csv(root: Path) -> None:
    png(root / "a.png")
    (root / "metadata.csv").write_text("file_name,text\na.png,x\n")


def bad_empty_metadata(root: Path) -> None:
    (root / "metadata.jsonl").write_text("\n")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (bad_no_images, "no images found"),
        (bad_missing_txt, r"lonely\.png: no caption; write it in lonely\.txt"),
        (bad_empty_txt, r"a\.txt: empty caption"),
        (bad_json, r"metadata\.jsonl:2: not valid JSON"),
        (bad_missing_text, r"metadata\.jsonl:1: missing caption `text` for a\.png"),
        (bad_missing_file, r"gone\.png does not exist"),
        (bad_not_image, r"a\.csv is not an image file"),
        (bad_twice, r"metadata\.jsonl:2: a\.png is listed twice"),
        (bad_csv, r"metadata\.csv: only metadata\.jsonl is supported"),
        (bad_empty_metadata, "no images listed"),
    ],
)
def test_bad_layouts_raise_data_error_naming_the_file(tmp_path: Path, make, message: str) -> None:
    make(tmp_path)
    with pytest.raises(DataError, match=message) as error:
        load_folder(tmp_path)
    assert isinstance(error.value, KeypaintError)
    assert str(tmp_path) in str(error.value)


def test_unreadable_image_is_an_image_error(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "broken.txt").write_text("broken")
    with pytest.raises(ImageError, match=r"broken\.png: unreadable image"):
        load_folder(tmp_path)
    assert load_folder(tmp_path, check_images=False)[0].caption == "broken"


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        load_folder(tmp_path / "missing")


def test_reads_a_built_emoji_dataset(tarballs: Path, tmp_path: Path) -> None:
    from keypaint.data import EmojiDataConfig, build_emoji_dataset

    out = tmp_path / "emoji"
    build_emoji_dataset(
        EmojiDataConfig(
            out=out,
            size=16,
            workers=1,
            styles=("noto",),
            heldout_fraction=0.5,
            from_tarballs=tarballs,
            npm_cache=tmp_path / "cache",
        )
    )
    train, heldout = load_folder(out), load_folder(out, split="heldout")
    assert len(train) + len(heldout) == 4
    assert all(r.fields["style"] == "noto" and isinstance(r.fields["tags"], list) for r in train + heldout)
