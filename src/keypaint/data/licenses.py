"""Provenance of a built dataset: sources.json for machines, LICENSES.md for the model card.

Every image stays under its set's licence; CC-BY sets need attribution and CC-BY-SA sets pass their
share-alike terms on, so both are spelled out next to the data instead of being left to memory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from keypaint.data.emoji import EmojiDataConfig, EmojiDataReport, SetStats
    from keypaint.data.icons import IconDataConfig, IconDataReport

LICENSE_NOTES = {
    "Apache-2.0": "keep the licence and NOTICE text with redistributed copies",
    "MIT": "keep the copyright and permission notice",
    "CC-BY-4.0": "credit the author, link the licence, say if changed",
    "CC-BY-SA-4.0": "credit the author, link the licence, say if changed; adaptations must be shared "
    "under CC BY-SA 4.0",
    "CC-BY-3.0": "credit the author, link the licence, say if changed",
    "ISC": "keep the copyright and permission notice",
    "CC0-1.0": "none (public domain dedication); credit given as a courtesy",
}


def sources_dict(report: EmojiDataReport, config: EmojiDataConfig) -> dict[str, Any]:
    """Everything needed to rebuild the data bit-for-bit and to attribute it."""
    return {
        "generator": "keypaint data emoji",
        "size": config.size,
        "heldout_fraction": config.heldout_fraction,
        "heldout_rule": "sha1(f'{hexcode}:{style}') first 8 bytes as big-endian int < fraction * 2**64",
        "skipped": "skin-tone variants, country/subdivision flags, keycaps, components, duplicates per style",
        "caption": "label, CLDR tags, '<style> style'",
        "seconds": {k: round(v, 2) for k, v in report.seconds.items()},
        "images": {split: sum(getattr(s, split) for s in report.sets) for split in ("train", "heldout")},
        "emojibase": report.emojibase,
        "sets": [emoji_set_entry(s) for s in report.sets],
    }


def emoji_set_entry(s: SetStats) -> dict[str, Any]:
    return {
        "style": s.style,
        "package": s.package,
        "version": s.version,
        "tarball": s.tarball,
        "sha256": s.sha256,
        "license": s.license,
        "author": s.author,
        "icons": s.icons,
        "matched": s.matched,
        "match_rate": round(s.match_rate, 4),
        "match_how": dict(sorted(s.match_how.items())),
        "skipped": dict(sorted(s.skipped.items())),
        "unmatched": s.unmatched,
        "unmatched_examples": s.unmatched_examples[:50],
        "render_failed": s.render_failed,
        "train": s.train,
        "heldout": s.heldout,
    }


def icons_sources_dict(report: IconDataReport, config: IconDataConfig) -> dict[str, Any]:
    """sources.json of `keypaint data icons`: the emoji part as above, then each icon set."""
    return {
        "generator": "keypaint data icons",
        "size": config.size,
        "limit": config.limit,
        "heldout_fraction": config.heldout_fraction,
        "heldout_rule": "emoji: sha1(f'{hexcode}:{style}'); icons: sha1(f'{label}:{style}'); first 8 bytes "
        "as big-endian int < fraction * 2**64",
        "skipped": "emoji: as `keypaint data emoji`; icons: hidden (renamed) icons, aliases, brands and "
        "logos, flags, file types (by category, else by name)",
        "caption": "emoji: label, CLDR tags, '<style> style'; icons: name words, categories, "
        "'<set> <variant> style', look keywords",
        "sampling": f"field `weight`, mean 1.0 per split: emoji share {config.emoji_share} of draws equally, "
        "icons the rest, equally per icon set and uniformly within a set",
        "seconds": {k: round(v, 2) for k, v in report.seconds.items()},
        "images": {split: sum(getattr(s, split) for s in [*report.emoji, *report.icons])
                   for split in ("train", "heldout")},
        "emojibase": report.emojibase,
        "sets": [emoji_set_entry(s) for s in report.emoji],
        "icon_sets": [
            {
                "prefix": s.prefix,
                "package": s.package,
                "version": s.version,
                "tarball": s.tarball,
                "sha256": s.sha256,
                "license": s.license,
                "author": s.author,
                "color": s.color,
                "icons": s.icons,
                "kept": s.kept,
                "skipped": dict(sorted(s.skipped.items())),
                "styles": dict(sorted(s.styles.items())),
                "render_failed": s.render_failed,
                "train": s.train,
                "heldout": s.heldout,
            }
            for s in report.icons
        ],
    }


def write_sources_json(report: EmojiDataReport, config: EmojiDataConfig) -> None:
    path = report.out / "sources.json"
    path.write_text(json.dumps(sources_dict(report, config), indent=2, ensure_ascii=False) + "\n", "utf-8")


def _link(entry: dict[str, Any], key: str = "name") -> str:
    name, url = entry.get(key) or entry.get("title") or entry.get("spdx") or "?", entry.get("url")
    return f"[{name}]({url})" if url else str(name)


class LicensedSet(Protocol):
    """A set's row in LICENSES.md (emoji's SetStats, icons' IconSetStats)."""

    package: str
    version: str
    license: dict[str, Any]
    author: dict[str, Any]

    @property
    def keywords(self) -> str: ...

    @property
    def images(self) -> int: ...


def licence_section(sets: Sequence[LicensedSet], emojibase: dict[str, Any] | None, intro: str) -> str:
    """A model-card section: one row per set with its style keywords, author, licence and images."""
    lines = [
        "## Training data licences",
        "",
        intro,
        "",
        "| Style keyword | Set (npm package) | Author | Licence | Images |",
        "|---|---|---|---|---|",
    ]
    for s in sets:
        licence = dict(s.license)
        licence.setdefault("title", licence.get("spdx", "?"))
        lines.append(
            f"| {s.keywords} | `{s.package}@{s.version}` | {_link(s.author)} "
            f"| {_link(licence, 'title')} | {s.images} |"
        )
    spdx_ids = sorted({s.license.get("spdx", "") for s in sets} - {""})
    lines += ["", "Licence terms in short:", ""]
    lines += [f"- **{spdx}**: {LICENSE_NOTES.get(spdx, 'see the licence text')}." for spdx in spdx_ids]
    lines.append("")
    if emojibase is not None:
        eb = emojibase
        lines.append(
            f"Emoji captions (labels and keywords) come from `{eb['package']}@{eb['version']}` "
            f"({eb['license'].get('spdx', 'MIT')}, {_link(eb['author'])}), which packages the Unicode CLDR "
            "emoji annotations ([Unicode License v3](https://www.unicode.org/license.txt))."
        )
    lines += [
        "Images were re-rendered to PNG and captions were rewritten as keywords; these are changes to "
        "the original works.",
        "",
    ]
    return "\n".join(lines)


def licenses_markdown(report: EmojiDataReport) -> str:
    """The emoji data's section: the ten emoji sets and emojibase."""
    intro = (
        "The built-in emoji model was trained on images rendered from these open emoji sets "
        "(via their [Iconify](https://iconify.design) npm packages):"
    )
    return licence_section(report.sets, report.emojibase, intro)


def write_licenses_md(report: EmojiDataReport) -> None:
    (report.out / "LICENSES.md").write_text(licenses_markdown(report), encoding="utf-8")
