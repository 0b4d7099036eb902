"""Emoji labels and tags from emojibase-data (CLDR annotations), indexed for matching icon names.

Icon sets name their icons either by codepoint or by a slug of some English name (CLDR label, Unicode
character name, or a shortcode), so the index answers all of those.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keypaint.data.errors import DataError
from keypaint.data.npm import read_members

DATA = "package/en/data.json"
GROUPS = "package/meta/groups.json"
UNICODE_NAMES = "package/meta/unicode-names.json"
SHORTCODES = tuple(
    f"package/en/shortcodes/{name}.json" for name in ("cldr", "emojibase", "github", "iamcal", "joypixels")
)
SKIN_TONES = {0x1F3FB, 0x1F3FC, 0x1F3FD, 0x1F3FE, 0x1F3FF}
VARIATION_SELECTORS = {0xFE0E, 0xFE0F}


@dataclass(frozen=True)
class Emoji:
    """One emojibase entry; skin-tone variants point at their base through `skin_of`."""

    hexcode: str  # emojibase spelling, e.g. "1F34E" or "0023-FE0F-20E3"
    label: str  # CLDR short name, e.g. "red apple"
    tags: tuple[str, ...]  # CLDR keywords, e.g. ("apple", "fruit", ...)
    group: str  # e.g. "food-drink"; "" for regional indicators
    subgroup: str  # e.g. "fruit", "country-flag", "keycap"
    skin_of: str | None = None  # base hexcode when this is a skin-tone variant


def norm_codepoints(code: str) -> str | None:
    """Canonical codepoint key: uppercase, 4+ digits, '-' joined, variation selectors dropped."""
    parts = [p for p in re.split(r"[-_ ]", code.strip()) if p]
    try:
        values = [int(p, 16) for p in parts]
    except ValueError:
        return None
    values = [v for v in values if v not in VARIATION_SELECTORS]
    if not values or any(v > 0x10FFFF for v in values):
        return None
    return "-".join(f"{v:04X}" for v in values)


def slug(text: str) -> str:
    """Iconify-style name: ASCII, lowercase, apostrophes dropped, other runs of punctuation -> '-'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    ascii_text = re.sub(r"['’]", "", ascii_text.lower())
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")


def compact(text: str) -> str:
    """Slug without separators, for sets that squash names ("admissiontickets")."""
    return slug(text).replace("-", "")


TONE_SUFFIX = re.compile(r"-(?:light|medium-light|medium|medium-dark|dark)(?:-skin-tone)?$")


def has_skin_tone(hexcode: str) -> bool:
    key = norm_codepoints(hexcode) or ""
    return any(int(part, 16) in SKIN_TONES for part in key.split("-") if part)


class EmojiIndex:
    """Look emoji up by codepoints or by any of their names; first name registered wins on a clash."""

    def __init__(self) -> None:
        self.emojis: list[Emoji] = []
        self._by_code: dict[str, Emoji] = {}
        self._by_slug: dict[str, Emoji] = {}
        self._by_compact: dict[str, Emoji] = {}

    def add(self, emoji: Emoji) -> None:
        key = norm_codepoints(emoji.hexcode)
        if key is None or key in self._by_code:
            return
        self.emojis.append(emoji)
        self._by_code[key] = emoji

    def add_name(self, name: str, emoji: Emoji) -> None:
        if s := slug(name):
            self._by_slug.setdefault(s, emoji)
            self._by_compact.setdefault(s.replace("-", ""), emoji)

    def by_codepoints(self, code: str) -> Emoji | None:
        key = norm_codepoints(code)
        return self._by_code.get(key) if key else None

    def by_name(self, name: str) -> tuple[Emoji | None, str]:
        """Match an icon name; returns (emoji, how) with how in name/compact/codepoint/variant or ''."""
        s = slug(name)
        for candidate in (s, f"{s}-skin-tone"):  # fluent-emoji writes "waving-hand-dark"
            if candidate in self._by_slug:
                return self._by_slug[candidate], "name"
        if s.replace("-", "") in self._by_compact:
            return self._by_compact[s.replace("-", "")], "compact"
        hex_name = re.fullmatch(r"(?:emoji-)?u?([0-9a-f]{4,6}(?:[-_][0-9a-f]{4,6})*)", s)
        if hex_name and (found := self.by_codepoints(hex_name.group(1))):
            return found, "codepoint"
        variant = re.fullmatch(r"(.+)-\d+", s)  # streamline-emojis: "pizza-2" is a second drawing
        if variant:
            found, _ = self.by_name(variant.group(1))
            if found:
                return found, "variant"
        return None, ""


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def load_emojibase(tarball: Path) -> tuple[EmojiIndex, dict[str, Any]]:
    """Build the index from an emojibase-data tarball; also returns its package.json."""
    optional = [UNICODE_NAMES, *SHORTCODES]
    files = read_members(
        tarball,
        [DATA, GROUPS, "package/package.json", *optional],
        required={DATA, GROUPS, "package/package.json"},
    )
    data, groups = files[DATA], files[GROUPS]
    if not isinstance(data, list) or not isinstance(groups, dict):
        raise DataError(f"{tarball}: {DATA} is not a list of emoji or {GROUPS} is not an object")
    group_names = {int(k): v for k, v in groups.get("groups", {}).items()}
    subgroup_names = {int(k): v for k, v in groups.get("subgroups", {}).items()}
    index = EmojiIndex()
    for entry in data:
        base = Emoji(
            hexcode=entry["hexcode"],
            label=entry["label"],
            tags=tuple(entry.get("tags", ())),
            group=group_names.get(entry.get("group", -1), ""),
            subgroup=subgroup_names.get(entry.get("subgroup", -1), ""),
        )
        index.add(base)
        for skin in entry.get("skins", ()):
            tone = Emoji(skin["hexcode"], skin["label"], base.tags, base.group, base.subgroup, base.hexcode)
            index.add(tone)
    # Names in order of trust: CLDR labels, Unicode character names, then shortcodes.
    for emoji in index.emojis:
        index.add_name(emoji.label, emoji)
    for emoji in index.emojis:  # "A button (blood type)" is "a-button" in older sets
        index.add_name(re.sub(r"\s*\(.*?\)", "", emoji.label), emoji)
    sources = [files[UNICODE_NAMES]] if UNICODE_NAMES in files else []
    sources += [files[name] for name in SHORTCODES if name in files]
    for mapping in sources:
        for hexcode, value in mapping.items():
            if emoji := index.by_codepoints(hexcode):
                for name in _names(value):
                    index.add_name(name, emoji)
    return index, files["package/package.json"]
