"""Real npm-style tarballs, built in tmp_path, for a tiny emojibase and two tiny icon sets."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

RED_CIRCLE = '<circle cx="64" cy="64" r="40" fill="#ff0000"/>'
YELLOW_SQUARE = '<rect x="24" y="24" width="80" height="80" fill="#ffdd00"/>'
BLUE_CIRCLE = '<circle cx="64" cy="64" r="40" fill="#0000ff"/>'

EMOJIBASE = [
    {"label": "red apple", "hexcode": "1F34E", "tags": ["apple", "fruit", "red"], "group": 4, "subgroup": 42},
    {"label": "grinning face", "hexcode": "1F600", "tags": ["face", "grin"], "group": 0, "subgroup": 1},
    {"label": "red heart", "hexcode": "2764-FE0F", "tags": ["heart"], "group": 0, "subgroup": 12},
    {
        "label": "waving hand",
        "hexcode": "1F44B",
        "tags": ["hand", "wave"],
        "group": 1,
        "subgroup": 15,
        "skins": [{"label": "waving hand: light skin tone", "hexcode": "1F44B-1F3FB", "tone": 1}],
    },
    {"label": "keycap: #", "hexcode": "0023-FE0F-20E3", "tags": ["keycap"], "group": 8, "subgroup": 94},
    {"label": "flag: Germany", "hexcode": "1F1E9-1F1EA", "tags": ["flag"], "group": 9, "subgroup": 98},
]
GROUPS = {
    "groups": {"0": "smileys-emotion", "1": "people-body", "4": "food-drink", "8": "symbols", "9": "flags"},
    "subgroups": {
        "1": "face-smiling",
        "12": "heart",
        "15": "hand-fingers-open",
        "42": "food-fruit",
        "94": "keycap",
        "98": "country-flag",
    },
}


def write_tgz(path: Path, files: dict[str, Any]) -> Path:
    """An npm-pack-like .tgz: every member under package/, dicts and lists stored as JSON."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            data = content if isinstance(content, bytes) else json.dumps(content).encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def info(name: str, spdx: str, author: str) -> dict[str, Any]:
    return {
        "name": name,
        "author": {"name": author, "url": f"https://example.org/{author}"},
        "license": {"title": spdx, "spdx": spdx, "url": f"https://example.org/{spdx}"},
    }


@pytest.fixture
def tarballs(tmp_path: Path) -> Path:
    """emojibase-data + noto (codepoint chars.json, pinned version) + fxemoji (squashed names, v1.0.0)."""
    folder = tmp_path / "npm"
    folder.mkdir()
    write_tgz(
        folder / "emojibase-data-17.0.0.tgz",
        {
            "package.json": {"name": "emojibase-data", "version": "17.0.0", "license": "MIT"},
            "en/data.json": EMOJIBASE,
            "meta/groups.json": GROUPS,
            "meta/unicode-names.json": {"1F600": "GRINNING FACE", "1F34E": "RED APPLE"},
            "en/shortcodes/github.json": {"1F600": "grinning", "2764": ["heart", "red_heart"]},
        },
    )
    noto_icons = {
        "prefix": "noto",
        "width": 128,
        "height": 128,
        "icons": {
            "red-apple": {"body": RED_CIRCLE},
            "grinning-face": {"body": YELLOW_SQUARE},
            "grinning": {"body": BLUE_CIRCLE, "hidden": True},  # shortcode name: a hidden duplicate
            "red-heart": {"body": RED_CIRCLE},
            "waving-hand": {"body": YELLOW_SQUARE},
            "waving-hand-light-skin-tone": {"body": YELLOW_SQUARE},
            "keycap-pound": {"body": BLUE_CIRCLE},
            "flag-germany": {"body": BLUE_CIRCLE},
            "rocket-ship-extra": {"body": BLUE_CIRCLE},  # no emoji of that name: unmatched
        },
        "aliases": {"apple": {"parent": "red-apple"}},
    }
    write_tgz(
        folder / "iconify-json-noto-1.2.9.tgz",
        {
            "package.json": {"name": "@iconify-json/noto", "version": "1.2.9"},
            "icons.json": noto_icons,
            "info.json": info("Noto Emoji", "Apache-2.0", "Google"),
            "chars.json": {
                "1f34e": "red-apple",
                "1f600": "grinning-face",
                "2764-fe0f": "red-heart",
                "1f44b": "waving-hand",
                "1f44b-1f3fb": "waving-hand-light-skin-tone",
                "23-20e3": "keycap-pound",
                "1f1e9-1f1ea": "flag-germany",
            },
        },
    )
    fx_icons = {
        "prefix": "fxemoji",
        "width": 512,
        "height": 512,
        "icons": {  # fxemoji squashes names and draws at 512 px; one icon is wider than tall
            "redapple": {"body": '<circle cx="256" cy="256" r="160" fill="#ff0000"/>'},
            "grinning": {
                "body": '<rect x="0" y="0" width="1024" height="512" fill="#00aa00"/>',
                "width": 1024,
            },
        },
    }
    write_tgz(
        folder / "iconify-json-fxemoji-1.0.0.tgz",
        {
            "package.json": {"name": "@iconify-json/fxemoji", "version": "1.0.0"},
            "icons.json": fx_icons,
            "info.json": info("Firefox OS Emoji", "CC-BY-4.0", "Mozilla"),
        },
    )
    return folder


BLACK_SQUARE = '<rect x="4" y="4" width="16" height="16" fill="currentColor"/>'
LINE_BOX = '<path fill="none" stroke="currentColor" stroke-width="2" d="M4 4h16v16H4z"/>'


@pytest.fixture
def icon_tarballs(tarballs: Path) -> Path:
    """The emoji tarballs plus tabler (no metadata.json), ph (suffixes, categories) and flat-color-icons."""
    tabler = {
        "prefix": "tabler",
        "width": 24,
        "height": 24,
        "icons": {
            "arrow-left": {"body": LINE_BOX},
            "arrow-left-filled": {"body": BLACK_SQUARE},
            "brand-github": {"body": BLACK_SQUARE},  # a brand: left out
            "file-type-pdf": {"body": BLACK_SQUARE},  # a file type: left out
            "flag-up": {"body": LINE_BOX},  # an object, not a country flag
            "zoom-in-magnifier-1": {"body": LINE_BOX},  # a numbered drawing
            "old-arrow": {"body": LINE_BOX, "hidden": True},  # a renamed icon kept for old links
        },
        "aliases": {"arrow-back": {"parent": "arrow-left"}},
    }
    write_tgz(
        tarballs / "iconify-json-tabler-1.2.41.tgz",
        {
            "package.json": {"name": "@iconify-json/tabler", "version": "1.2.41"},
            "icons.json": tabler,
            "info.json": info("Tabler Icons", "MIT", "Pawel Kuna"),
        },
    )
    ph_names = ["acorn", "acorn-bold", "acorn-duotone", "acorn-fill"]
    write_tgz(
        tarballs / "iconify-json-ph-1.2.2.tgz",
        {
            "package.json": {"name": "@iconify-json/ph", "version": "1.2.2"},
            "icons.json": {
                "prefix": "ph",
                "width": 24,
                "height": 24,
                "icons": {name: {"body": BLACK_SQUARE} for name in [*ph_names, "github-logo"]},
            },
            "info.json": info("Phosphor", "MIT", "Phosphor Icons"),
            "metadata.json": {
                "categories": {"FoodDrink": ph_names, "Brand / Logo": ["github-logo"]},
                "suffixes": {"": "Regular", "bold": "Bold", "duotone": "Duotone", "fill": "Fill"},
            },
        },
    )
    write_tgz(
        tarballs / "iconify-json-flat-color-icons-1.2.3.tgz",
        {
            "package.json": {"name": "@iconify-json/flat-color-icons", "version": "1.2.3"},
            "icons.json": {
                "prefix": "flat-color-icons",
                "width": 48,
                "height": 48,
                "icons": {"about": {"body": '<circle cx="24" cy="24" r="20" fill="#2196f3"/>'}},
            },
            "info.json": {**info("Flat Color Icons", "MIT", "Icons8"), "palette": True},
        },
    )
    return tarballs
