"""Build the built-in model's training data: ten open emoji sets, captioned with CLDR keywords.

Stages: 1. find or fetch the npm tarballs, 2. index emojibase labels/tags, 3. match each set's icons
to emoji, 4. render the kept icons with resvg, 5. write the imagefolder metadata, sources.json and
LICENSES.md. Skin-tone variants, country/subdivision flags, keycaps and components are left out of
every set alike, so no style is over-represented by near-duplicates.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keypaint.data.captions import emoji_caption, style_keyword
from keypaint.data.emojibase import TONE_SUFFIX, Emoji, EmojiIndex, has_skin_tone, load_emojibase
from keypaint.data.errors import DataError
from keypaint.data.iconify import IconSet, icon_svg, load_icon_set
from keypaint.data.licenses import write_licenses_md, write_sources_json
from keypaint.data.npm import NpmPackage, resolve_tarballs, sha256_file
from keypaint.data.render import RenderJob, render_all
from keypaint.data.split import is_heldout

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class EmojiSet:
    """One icon set and the style keyword its images are captioned with."""

    style: str  # caption keyword stem and file-name prefix, e.g. "fluent-flat"
    package: NpmPackage


EMOJI_SETS: tuple[EmojiSet, ...] = (
    EmojiSet("noto", NpmPackage("@iconify-json/noto", "1.2.9")),
    EmojiSet("noto-v1", NpmPackage("@iconify-json/noto-v1", "1.2.5")),
    EmojiSet("twemoji", NpmPackage("@iconify-json/twemoji", "1.2.5")),
    EmojiSet("fluent-3d", NpmPackage("@iconify-json/fluent-emoji", "1.2.7")),
    EmojiSet("fluent-flat", NpmPackage("@iconify-json/fluent-emoji-flat", "1.2.6")),
    EmojiSet("openmoji", NpmPackage("@iconify-json/openmoji", "1.2.29")),
    EmojiSet("emojione", NpmPackage("@iconify-json/emojione", "1.2.3")),
    EmojiSet("emojione-v1", NpmPackage("@iconify-json/emojione-v1", "1.2.3")),
    EmojiSet("fxemoji", NpmPackage("@iconify-json/fxemoji", "1.2.2")),
    EmojiSet("streamline", NpmPackage("@iconify-json/streamline-emojis", "1.2.4")),
)
EMOJIBASE = NpmPackage("emojibase-data", "17.0.0")
SKIPPED_SUBGROUPS = {"country-flag": "flag", "subdivision-flag": "flag", "keycap": "keycap"}


@dataclass
class EmojiDataConfig:
    """What `keypaint data emoji` builds and where its inputs come from."""

    out: Path  # output folder: train/, heldout/, sources.json, LICENSES.md
    size: int = 128  # rendered image side in pixels
    workers: int | None = None  # render processes; None = one per CPU core
    heldout_fraction: float = 0.05  # share of (emoji, style) pairs kept out of train
    styles: tuple[str, ...] | None = None  # subset of EMOJI_SETS styles; None = all ten
    npm_cache: Path | None = None  # tarballs are looked up here and `npm pack`ed into it when absent
    from_tarballs: Path | None = None  # offline: read tarballs only from here, never run npm
    limit: int | None = None  # first N icons per set (by name), for quick trial builds
    overwrite: bool = False  # replace train/ and heldout/ of an earlier build in `out`


@dataclass
class SetStats:
    """Counts for one set, written to sources.json and shown by the CLI."""

    style: str
    package: str
    version: str = ""
    tarball: str = ""
    sha256: str = ""
    license: dict[str, Any] = field(default_factory=dict)
    author: dict[str, Any] = field(default_factory=dict)
    icons: int = 0  # icons in the set (aliases are not counted: they repeat a parent icon)
    matched: int = 0  # icons matched to an emojibase entry, before skipping
    match_how: Counter[str] = field(default_factory=Counter)  # codepoint / name / compact / variant
    skipped: Counter[str] = field(default_factory=Counter)  # skin_tone/flag/keycap/component/duplicate
    unmatched: int = 0
    unmatched_examples: list[str] = field(default_factory=list)
    train: int = 0
    heldout: int = 0
    render_failed: dict[str, str] = field(default_factory=dict)

    @property
    def match_rate(self) -> float:
        return self.matched / self.icons if self.icons else 0.0

    @property
    def keywords(self) -> str:
        return style_keyword(self.style)

    @property
    def images(self) -> int:
        return self.train + self.heldout


@dataclass
class EmojiDataReport:
    """What a build produced; `sets` follows EMOJI_SETS order."""

    out: Path
    sets: list[SetStats]
    emojibase: dict[str, Any]
    seconds: dict[str, float]

    @property
    def images(self) -> int:
        return sum(s.train + s.heldout for s in self.sets)


@dataclass(frozen=True)
class Sample:
    split: str  # "train" or "heldout"
    row: dict[str, Any]  # one metadata.jsonl line
    svg: str


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


def select_sets(styles: tuple[str, ...] | None) -> list[EmojiSet]:
    known = {s.style: s for s in EMOJI_SETS}
    if styles is None:
        return list(EMOJI_SETS)
    unknown = [s for s in styles if s not in known]
    if unknown or not styles:
        raise DataError(f"unknown emoji set {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}")
    return [known[s] for s in styles]


def skip_reason(emoji: Emoji) -> str | None:
    """Why a matched emoji stays out of the data, or None to keep it."""
    if emoji.skin_of or has_skin_tone(emoji.hexcode):
        return "skin_tone"
    if emoji.subgroup in SKIPPED_SUBGROUPS:
        return SKIPPED_SUBGROUPS[emoji.subgroup]
    if emoji.group in ("component", ""):
        return "component"  # skin-tone swatches, hair parts, regional indicator letters
    return None


def plan_set(
    icon_set: IconSet,
    emoji_set: EmojiSet,
    index: EmojiIndex,
    stats: SetStats,
    heldout_fraction: float,
    limit: int | None = None,
) -> list[Sample]:
    """Match a set's icons to emoji and decide each kept icon's split; fills `stats`."""
    icons = sorted(icon_set.icons, key=lambda i: i.name)[:limit]
    stats.icons = len(icons)
    best: dict[str, tuple[tuple[bool, bool, str], Emoji, Any]] = {}
    for icon in icons:
        code = icon_set.codepoints.get(icon.name)
        emoji, how = (index.by_codepoints(code), "codepoint") if code else (None, "")
        if emoji is None:
            emoji, how = index.by_name(icon.name)
        if emoji is None:
            if "skin-tone" in icon.name or TONE_SUFFIX.search(icon.name) or (code and has_skin_tone(code)):
                stats.skipped["skin_tone"] += 1
            elif icon.name.startswith("flag-"):
                stats.skipped["flag"] += 1
            else:
                stats.unmatched += 1
                stats.unmatched_examples.append(icon.name)
            continue
        stats.matched += 1
        stats.match_how[how] += 1
        if reason := skip_reason(emoji):
            stats.skipped[reason] += 1
            continue
        # One image per (emoji, style): prefer visible icons, exact names, then the first name.
        rank = (icon.hidden, how == "variant", icon.name)
        previous = best.get(emoji.hexcode)
        if previous is not None:
            stats.skipped["duplicate"] += 1
            if previous[0] <= rank:
                continue
        best[emoji.hexcode] = (rank, emoji, icon)
    license_id = icon_set.info.get("license", {}).get("spdx", "")
    samples = []
    for hexcode, (_, emoji, icon) in sorted(best.items()):
        split = "heldout" if is_heldout(hexcode, emoji_set.style, heldout_fraction) else "train"
        row = {
            "file_name": f"{emoji_set.style}_{hexcode.lower()}.png",
            "text": emoji_caption(emoji.label, emoji.tags, emoji_set.style),
            "label": emoji.label,
            "tags": list(emoji.tags),
            "style": emoji_set.style,
            "hexcode": hexcode,
            "group": emoji.group,
            "subgroup": emoji.subgroup,
            "icon": f"{icon_set.prefix}:{icon.name}",
            "license": license_id,
        }
        samples.append(Sample(split, row, icon_svg(icon)))
    return samples


def _owned_paths(out: Path) -> list[Path]:
    return [out / "train", out / "heldout", out / "sources.json", out / "LICENSES.md"]


def check_out(config: EmojiDataConfig) -> None:
    """Refuse to mix a new build into an old one unless asked to replace it (checked before any work)."""
    if config.out.exists() and not config.out.is_dir():
        raise DataError(f"{config.out}: exists and is not a folder")
    if not config.overwrite and any(p.exists() for p in _owned_paths(config.out)):
        raise DataError(f"{config.out}: already holds a dataset (train/, sources.json); pass --overwrite")


def prepare_out(config: EmojiDataConfig) -> None:
    """Empty the parts of `out` a build writes; other files there are left alone."""
    out = config.out
    check_out(config)
    for path in _owned_paths(out):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for split in ("train", "heldout"):
        (out / split).mkdir(parents=True, exist_ok=True)


def default_npm_cache() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("keypaint")) / "npm"


def emojibase_source(tarball: Path) -> tuple[EmojiIndex, dict[str, Any]]:
    """The label index and the record of where it came from (sources.json's `emojibase`)."""
    index, package = load_emojibase(tarball)
    return index, {
        "package": EMOJIBASE.name,
        "version": package.get("version", ""),
        "tarball": tarball.name,
        "sha256": sha256_file(tarball),
        "license": {"spdx": package.get("license", "MIT")},
        "author": {"name": "Miles Johnson", "url": "https://github.com/milesj/emojibase"},
        "emoji": len(index.emojis),
    }


def set_stats(style: str, package: NpmPackage, path: Path, icon_set: IconSet) -> SetStats:
    """Counts start empty; the version, checksum, licence and author are the tarball's."""
    return SetStats(
        style=style,
        package=package.name,
        version=icon_set.package.get("version", ""),
        tarball=path.name,
        sha256=sha256_file(path),
        license=dict(icon_set.info.get("license", {})),
        author=dict(icon_set.info.get("author", {})),
    )


def build_emoji_dataset(config: EmojiDataConfig, progress: ProgressFn | None = None) -> EmojiDataReport:
    """Run all stages; returns per-set counts. Raises DataError on bad input before writing images."""
    if config.size < 8 or config.size > 4096:
        raise DataError(f"size must be between 8 and 4096 pixels, got {config.size}")
    if not 0.0 <= config.heldout_fraction < 1.0:
        raise DataError(f"held-out fraction must be in [0, 1), got {config.heldout_fraction}")
    sets = select_sets(config.styles)
    check_out(config)
    report: ProgressFn = progress or _no_progress
    seconds: dict[str, float] = {}

    # 1. tarballs: offline from a folder, or fetched once into the npm cache
    start = time.perf_counter()
    packages = [EMOJIBASE, *(s.package for s in sets)]
    report("fetch", 0, len(packages))
    tarballs = resolve_tarballs(
        packages, npm_cache=config.npm_cache or default_npm_cache(), from_tarballs=config.from_tarballs
    )
    report("fetch", len(packages), len(packages))
    seconds["fetch"] = time.perf_counter() - start

    # 2. emoji labels and tags
    start = time.perf_counter()
    index, emojibase = emojibase_source(tarballs[EMOJIBASE.name])

    # 3. match icons to emoji, set by set
    prepare_out(config)
    all_stats: list[SetStats] = []
    samples: list[Sample] = []
    for number, emoji_set in enumerate(sets):
        report("match", number, len(sets))
        path = tarballs[emoji_set.package.name]
        icon_set = load_icon_set(path)
        stats = set_stats(emoji_set.style, emoji_set.package, path, icon_set)
        samples += plan_set(icon_set, emoji_set, index, stats, config.heldout_fraction, config.limit)
        all_stats.append(stats)
    report("match", len(sets), len(sets))
    seconds["match"] = time.perf_counter() - start

    # 4. render
    start = time.perf_counter()
    jobs: list[RenderJob] = [
        (s.svg, str(config.out / s.split / s.row["file_name"]), config.size) for s in samples
    ]
    report("render", 0, len(jobs))
    failed = render_all(jobs, config.workers or os.cpu_count(), lambda n: report("render", n, len(jobs)))
    seconds["render"] = time.perf_counter() - start

    # 5. metadata and provenance
    by_style = {s.style: s for s in all_stats}
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "heldout": []}
    for sample, (path, _, _) in zip(samples, jobs, strict=True):
        stats = by_style[sample.row["style"]]
        if path in failed:
            stats.render_failed[sample.row["icon"]] = failed[path]
            continue
        rows[sample.split].append(sample.row)
        setattr(stats, sample.split, getattr(stats, sample.split) + 1)
    for split, split_rows in rows.items():
        with (config.out / split / "metadata.jsonl").open("w", encoding="utf-8") as handle:
            for row in sorted(split_rows, key=lambda r: r["file_name"]):
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    result = EmojiDataReport(config.out, all_stats, emojibase, seconds)
    write_sources_json(result, config)
    write_licenses_md(result)
    return result
