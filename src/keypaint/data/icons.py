"""Build emoji-and-icons training data: the ten emoji sets plus open iconify sets of other styles.

Stages: 1. check the sets and OUT, 2. find or fetch the npm tarballs, 3. plan the emoji (as
`keypaint data emoji` does) and the icons (name words, variant, categories, look), 4. render every
picture with resvg at the same size on white (monochrome `currentColor` icons come out black),
5. write metadata with sampling weights, sources.json and LICENSES.md. OUT must be new or empty:
nothing that exists is overwritten.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keypaint.data.balance import EMOJI_SHARE, set_weights
from keypaint.data.captions import icon_caption, style_keyword
from keypaint.data.emoji import (
    EMOJI_SETS,
    EMOJIBASE,
    ProgressFn,
    Sample,
    SetStats,
    default_npm_cache,
    emojibase_source,
    plan_set,
    set_stats,
)
from keypaint.data.errors import DataError
from keypaint.data.icon_names import category_tags, exclusion, parse_name
from keypaint.data.icon_sets import (
    ICON_SETS,
    LOOK_KEYWORDS,
    VARIANT_LOOKS,
    IconSource,
    excluded_reason,
    refuse_excluded,
    select_icon_sets,
)
from keypaint.data.iconify import IconSet, icon_svg, load_icon_set
from keypaint.data.licenses import icons_sources_dict, licence_section
from keypaint.data.npm import resolve_tarballs, sha256_file
from keypaint.data.render import RenderJob, render_all
from keypaint.data.split import is_heldout


@dataclass
class IconDataConfig:
    """What `keypaint data icons` builds and where its inputs come from."""

    out: Path  # a new or empty folder: train/, heldout/, sources.json, LICENSES.md
    size: int = 128  # rendered image side in pixels, the same for emoji and icons
    workers: int | None = None  # render processes; None = one per CPU core
    heldout_fraction: float = 0.05  # share of (label, style) pairs kept out of train
    sets: tuple[str, ...] | None = None  # emoji styles and icon set prefixes; None = all of both
    npm_cache: Path | None = None  # tarballs are looked up here and `npm pack`ed into it when absent
    from_tarballs: Path | None = None  # offline: read tarballs only from here, never run npm
    limit: int | None = None  # first N kept icons per set (by name), for tests and trials
    emoji_share: float = EMOJI_SHARE  # share of sampling weight given to emoji records


@dataclass
class IconSetStats:
    """Counts for one icon set, written to sources.json and shown by the CLI."""

    prefix: str
    package: str
    version: str = ""
    tarball: str = ""
    sha256: str = ""
    license: dict[str, Any] = field(default_factory=dict)
    author: dict[str, Any] = field(default_factory=dict)
    color: bool = False  # multicolour drawings (info.json `palette`)
    icons: int = 0  # visible icons in the set (hidden renames and aliases are not counted)
    kept: int = 0  # icons left after brand/logo/flag/file-type exclusion: the set's full size here
    skipped: Counter[str] = field(default_factory=Counter)  # brand / flag / file-type / no_name
    styles: Counter[str] = field(default_factory=Counter)  # style id -> pictures planned
    train: int = 0
    heldout: int = 0
    render_failed: dict[str, str] = field(default_factory=dict)

    @property
    def keywords(self) -> str:
        return ", ".join(style_keyword(s) for s in sorted(self.styles)) or style_keyword(self.prefix)

    @property
    def images(self) -> int:
        return self.train + self.heldout


@dataclass
class IconDataReport:
    """What a build produced: emoji sets in EMOJI_SETS order, then icon sets in ICON_SETS order."""

    out: Path
    emoji: list[SetStats]
    icons: list[IconSetStats]
    emojibase: dict[str, Any] | None
    seconds: dict[str, float]

    @property
    def images(self) -> int:
        return sum(s.images for s in [*self.emoji, *self.icons])


def split_names(names: tuple[str, ...] | None) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """`--sets` names as (emoji styles, icon prefixes); bad names raise before any download."""
    if names is None:
        return None, None
    if not names:
        raise DataError("no set named; pass emoji styles and icon sets, e.g. --sets noto,tabler")
    refuse_excluded(list(names))
    emoji_styles = {s.style for s in EMOJI_SETS}
    icon_prefixes = {s.prefix for s in ICON_SETS}
    unknown = [n for n in names if n not in emoji_styles | icon_prefixes]
    if unknown:
        raise DataError(
            f"unknown set {', '.join(unknown)}; choose from {', '.join(sorted(emoji_styles | icon_prefixes))}"
        )
    return tuple(n for n in names if n in emoji_styles), tuple(n for n in names if n in icon_prefixes)


def check_out(out: Path) -> None:
    """OUT must not exist or be an empty folder: a build never overwrites or mixes with other files."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise DataError(f"{out}: is not empty; choose a new folder (a build never overwrites files)")


def icon_look(source: IconSource, variant: tuple[str, ...]) -> str:
    """The look of one drawing: a monochrome set's variant can change it (ph's duotone, tabler's filled)."""
    if source.look in ("line", "filled", "duotone"):
        looks = {**VARIANT_LOOKS, **dict(source.variant_looks)}
        for word in reversed(variant):  # "bold-duotone" is duotone, "outline-rounded" is line
            if word in looks:
                return looks[word]
    return source.look


def plan_icon_set(
    icon_set: IconSet, source: IconSource, stats: IconSetStats, heldout_fraction: float, limit: int | None
) -> list[Sample]:
    """Caption a set's kept icons and decide each one's split; fills `stats`."""
    for name in (icon_set.prefix, str(icon_set.package.get("name", ""))):  # a renamed tarball too
        if reason := excluded_reason(name):
            raise DataError(f"{stats.tarball}: holds {name}, which is excluded: {reason}")
    suffixes = icon_set.suffixes or list(source.suffixes)
    license_id = icon_set.info.get("license", {}).get("spdx", "")
    planned = []
    for icon in sorted(icon_set.icons, key=lambda i: i.name):
        if icon.hidden:
            continue
        stats.icons += 1
        name = parse_name(icon.name, suffixes, source.default_variant)
        categories = icon_set.categories.get(icon.name) or icon_set.categories.get(name.base) or []
        reason = exclusion(name, categories) or ("" if name.words else "no_name")
        if reason:
            stats.skipped[reason] += 1
            continue
        stats.kept += 1
        planned.append((icon, name, category_tags(categories)))
    samples = []
    for icon, name, tags in planned[:limit]:
        style = "-".join([source.prefix, *name.variant])
        look = icon_look(source, name.variant)
        looks = [LOOK_KEYWORDS[look]] + (["color icon"] if stats.color and look != "color" else [])
        split = "heldout" if is_heldout(name.label, style, heldout_fraction) else "train"
        row = {
            "file_name": f"{source.prefix}_{icon.name}.png",
            "text": icon_caption(name.label, tags, style, looks),
            "label": name.label,
            "tags": tags,
            "style": style,
            "kind": "icon",
            "set": source.prefix,
            "variant": list(name.variant),
            "look": look,
            "looks": looks,
            "color": stats.color,
            "icon": f"{icon_set.prefix}:{icon.name}",
            "license": license_id,
        }
        stats.styles[style] += 1
        samples.append(Sample(split, row, icon_svg(icon)))
    return samples


def icon_stats(source: IconSource, path: Path, icon_set: IconSet) -> IconSetStats:
    return IconSetStats(
        prefix=source.prefix,
        package=source.package.name,
        version=icon_set.package.get("version", ""),
        tarball=path.name,
        sha256=sha256_file(path),
        license=dict(icon_set.info.get("license", {})),
        author=dict(icon_set.info.get("author", {})),
        color=bool(icon_set.info.get("palette", source.color)),
    )


def build_icons_dataset(config: IconDataConfig, progress: ProgressFn | None = None) -> IconDataReport:
    """Run all stages; returns per-set counts. Raises DataError on bad input before any download."""
    # 1. sets and OUT, before anything is fetched
    if config.size < 8 or config.size > 4096:
        raise DataError(f"size must be between 8 and 4096 pixels, got {config.size}")
    if not 0.0 <= config.heldout_fraction < 1.0:
        raise DataError(f"held-out fraction must be in [0, 1), got {config.heldout_fraction}")
    if config.limit is not None and config.limit < 1:
        raise DataError(f"limit must be at least 1, got {config.limit}")
    if not 0.0 < config.emoji_share < 1.0:
        raise DataError(f"emoji share must be between 0 and 1, got {config.emoji_share}")
    emoji_styles, icon_prefixes = split_names(config.sets)
    emoji_sets = [s for s in EMOJI_SETS if emoji_styles is None or s.style in emoji_styles]
    icon_sources = select_icon_sets(icon_prefixes) if icon_prefixes != () else []
    check_out(config.out)
    report: ProgressFn = progress or (lambda stage, done, total: None)
    seconds: dict[str, float] = {}

    # 2. tarballs: offline from a folder, or fetched once into the npm cache
    start = time.perf_counter()
    packages = ([EMOJIBASE] if emoji_sets else []) + [s.package for s in emoji_sets]
    packages += [s.package for s in icon_sources]
    refuse_excluded([p.name for p in packages])
    report("fetch", 0, len(packages))
    tarballs = resolve_tarballs(
        packages, npm_cache=config.npm_cache or default_npm_cache(), from_tarballs=config.from_tarballs
    )
    report("fetch", len(packages), len(packages))
    seconds["fetch"] = time.perf_counter() - start

    # 3. plan: emoji matched to emojibase labels, icons captioned from their names
    start = time.perf_counter()
    emojibase, samples = None, []
    emoji_stats: list[SetStats] = []
    if emoji_sets:
        index, emojibase = emojibase_source(tarballs[EMOJIBASE.name])
        for emoji_set in emoji_sets:
            path = tarballs[emoji_set.package.name]
            icon_set = load_icon_set(path)
            stats = set_stats(emoji_set.style, emoji_set.package, path, icon_set)
            emoji_stats.append(stats)
            planned = plan_set(icon_set, emoji_set, index, stats, config.heldout_fraction, config.limit)
            samples += [Sample(s.split, {**s.row, "kind": "emoji", "set": s.row["style"]}, s.svg)
                        for s in planned]
            report("plan", len(emoji_stats), len(emoji_sets) + len(icon_sources))
    all_icon_stats: list[IconSetStats] = []
    for source in icon_sources:
        path = tarballs[source.package.name]
        icon_set = load_icon_set(path)
        all_icon_stats.append(icon_stats(source, path, icon_set))
        samples += plan_icon_set(icon_set, source, all_icon_stats[-1], config.heldout_fraction, config.limit)
        report("plan", len(emoji_stats) + len(all_icon_stats), len(emoji_sets) + len(icon_sources))
    seconds["plan"] = time.perf_counter() - start

    # 4. render every picture the same way, into the new folder
    start = time.perf_counter()
    for split in ("train", "heldout"):
        (config.out / split).mkdir(parents=True, exist_ok=False)
    jobs: list[RenderJob] = [
        (s.svg, str(config.out / s.split / s.row["file_name"]), config.size) for s in samples
    ]
    report("render", 0, len(jobs))
    failed = render_all(jobs, config.workers or os.cpu_count(), lambda n: report("render", n, len(jobs)))
    seconds["render"] = time.perf_counter() - start

    # 5. metadata with sampling weights, provenance and licences
    by_set: dict[str, SetStats | IconSetStats] = {s.style: s for s in emoji_stats}
    by_set.update({s.prefix: s for s in all_icon_stats})
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "heldout": []}
    for sample, (path, _, _) in zip(samples, jobs, strict=True):
        owner = by_set[sample.row["set"]]
        if path in failed:
            owner.render_failed[sample.row["icon"]] = failed[path]
            continue
        rows[sample.split].append(sample.row)
        setattr(owner, sample.split, getattr(owner, sample.split) + 1)
    for split, split_rows in rows.items():
        set_weights(split_rows, config.emoji_share)
        with (config.out / split / "metadata.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
            for row in sorted(split_rows, key=lambda r: r["file_name"]):
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    result = IconDataReport(config.out, emoji_stats, all_icon_stats, emojibase, seconds)
    write_provenance(result, config)
    return result


def write_provenance(report: IconDataReport, config: IconDataConfig) -> None:
    """OUT/sources.json (to rebuild and attribute the data) and OUT/LICENSES.md (for the model card)."""
    sources = json.dumps(icons_sources_dict(report, config), indent=2, ensure_ascii=False)
    (report.out / "sources.json").write_text(sources + "\n", encoding="utf-8")
    intro = (
        "The built-in model was trained on images rendered from these open emoji and icon sets "
        "(via their [Iconify](https://iconify.design) npm packages). Icon captions are the icon's name "
        "split into words, its categories where the set has them, its style and look keywords:"
    )
    markdown = licence_section([*report.emoji, *report.icons], report.emojibase, intro)
    (report.out / "LICENSES.md").write_text(markdown, encoding="utf-8")
