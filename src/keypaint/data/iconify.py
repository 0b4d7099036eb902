"""Read an iconify JSON icon set and turn each icon into a standalone SVG document.

Only real icons are used; aliases are skipped because they repeat their parent (or mirror it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keypaint.data.errors import DataError
from keypaint.data.npm import read_members

ICONS = "package/icons.json"
INFO = "package/info.json"
CHARS = "package/chars.json"
PACKAGE = "package/package.json"
METADATA = "package/metadata.json"  # categories, variant suffixes (optional)


@dataclass(frozen=True)
class Icon:
    """One icon: its SVG body and the viewBox it is drawn in."""

    name: str
    body: str
    left: float = 0
    top: float = 0
    width: float = 16
    height: float = 16
    hidden: bool = False  # iconify keeps renamed/removed icons hidden for old links


@dataclass
class IconSet:
    """An iconify set as shipped on npm: icons.json plus info.json and chars.json beside it."""

    prefix: str
    icons: list[Icon]
    info: dict[str, Any]  # name, author {name, url}, license {title, spdx, url}
    package: dict[str, Any]  # package.json: the exact name and version fetched
    codepoints: dict[str, str] = field(default_factory=dict)  # icon name -> codepoints, where known
    categories: dict[str, list[str]] = field(default_factory=dict)  # icon name -> its categories, where known
    suffixes: list[str] = field(default_factory=list)  # variant suffixes metadata.json lists, e.g. ["filled"]


def parse_icons(data: dict[str, Any], source: str) -> list[Icon]:
    """Icons of one iconify JSON object, with per-icon sizes falling back to the set's."""
    icons = data.get("icons")
    if not isinstance(icons, dict) or not icons:
        raise DataError(f"{source}: no `icons` object (not an iconify JSON file)")
    width, height = data.get("width", 16), data.get("height", 16)
    left, top = data.get("left", 0), data.get("top", 0)
    out = []
    for name, icon in icons.items():
        if not isinstance(icon, dict) or not isinstance(icon.get("body"), str):
            raise DataError(f"{source}: icon {name!r} has no SVG body")
        out.append(
            Icon(
                name=name,
                body=icon["body"],
                left=icon.get("left", left),
                top=icon.get("top", top),
                width=icon.get("width", width),
                height=icon.get("height", height),
                hidden=bool(icon.get("hidden", False)),
            )
        )
    return out


def load_icon_set(tarball: Path) -> IconSet:
    """Read a @iconify-json/* tarball; licence comes from info.json or the `info` key of icons.json."""
    files = read_members(tarball, [ICONS, INFO, CHARS, PACKAGE, METADATA], required={ICONS, PACKAGE})
    data = files[ICONS]
    if not isinstance(data, dict):
        raise DataError(f"{tarball}: {ICONS} is not an object")
    info = files.get(INFO) or data.get("info") or {}
    if not info.get("license"):
        raise DataError(f"{tarball}: no licence in info.json or icons.json `info`; refusing to use it")
    chars = files.get(CHARS) or {}
    codepoints: dict[str, str] = {}
    for code, name in chars.items():
        codepoints.setdefault(name, code)
    metadata = files.get(METADATA) or {}
    categories: dict[str, list[str]] = {}
    for category, names in (metadata.get("categories") or data.get("categories") or {}).items():
        for name in names if isinstance(names, list) else []:
            categories.setdefault(name, []).append(category)
    return IconSet(
        prefix=data.get("prefix", tarball.stem),
        icons=parse_icons(data, f"{tarball}:{ICONS}"),
        info=info,
        package=files[PACKAGE],
        codepoints=codepoints,
        categories=categories,
        suffixes=[s for s in metadata.get("suffixes") or {} if isinstance(s, str) and s],
    )


def icon_svg(icon: Icon) -> str:
    """A complete SVG document with a square viewBox, so non-square icons are centred, not stretched."""
    side = max(icon.width, icon.height)
    left, top = icon.left - (side - icon.width) / 2, icon.top - (side - icon.height) / 2
    box = f"{left:g} {top:g} {side:g} {side:g}"
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'viewBox="{box}" preserveAspectRatio="xMidYMid meet">{icon.body}</svg>'
    )
