"""The open iconify sets `keypaint data icons` adds to the emoji, and the sets it must never use.

Each set has a look (line, filled, duotone, pixel, hand-drawn, color): a generic keyword a person types
("line icon", "pixel art") beside the set's own style keyword ("tabler outline style"). Variant suffixes
(`-filled`, `-outline-rounded`, `-24`) come from the set's metadata.json where it lists them, else from
`suffixes` here; a variant may change the look (`ph:acorn-duotone` is duotone, `ph:acorn` is line).
"""

from __future__ import annotations

from dataclasses import dataclass

from keypaint.data.errors import DataError
from keypaint.data.npm import NpmPackage

LOOK_KEYWORDS: dict[str, str] = {
    "line": "line icon",
    "filled": "filled icon",
    "duotone": "duotone icon",
    "pixel": "pixel art",
    "hand-drawn": "hand-drawn icon",
    "color": "color icon",
}
# A variant word that changes the look of a monochrome set; colour, pixel and hand-drawn sets keep theirs.
VARIANT_LOOKS: dict[str, str] = {
    "outline": "line", "line": "line", "linear": "line", "broken": "line", "thin": "line", "light": "line",
    "filled": "filled", "solid": "filled", "bold": "filled", "remix": "filled",
    "duotone": "duotone", "twotone": "duotone",
}
VARIANT_SPELLING = {"fill": "filled", "outlined": "outline"}  # one word per variant in style keywords


@dataclass(frozen=True)
class IconSource:
    """One iconify set: its prefix (the name `--sets` takes), package, default variant and look."""

    prefix: str  # e.g. "tabler"; also the style keyword stem
    package: NpmPackage
    look: str  # a LOOK_KEYWORDS key for icons without a variant suffix
    default_variant: tuple[str, ...] = ()  # words for the unsuffixed icons, e.g. ("outline",) for tabler
    suffixes: tuple[str, ...] = ()  # variant suffixes when metadata.json lists none
    color: bool = False  # multicolour drawings (the look keyword "color icon" is added to any look)
    variant_looks: tuple[tuple[str, str], ...] = ()  # this set's exceptions to VARIANT_LOOKS


def _pkg(prefix: str, version: str) -> NpmPackage:
    return NpmPackage(f"@iconify-json/{prefix}", version)


ICON_SETS: tuple[IconSource, ...] = (
    IconSource("game-icons", _pkg("game-icons", "1.2.4"), "filled"),
    IconSource("mdi", _pkg("mdi", "1.2.3"), "filled", suffixes=("outline",)),
    IconSource("material-symbols", _pkg("material-symbols", "1.2.98"), "filled"),
    IconSource("ph", _pkg("ph", "1.2.2"), "line", variant_looks=(("bold", "line"),)),  # a thicker line
    IconSource("tabler", _pkg("tabler", "1.2.41"), "line", ("outline",), ("filled",)),
    IconSource("lucide", _pkg("lucide", "1.2.137"), "line"),
    IconSource("solar", _pkg("solar", "1.2.13"), "line"),
    IconSource("hugeicons", _pkg("hugeicons", "1.2.35"), "line"),
    IconSource("carbon", _pkg("carbon", "1.2.30"), "line", suffixes=("filled",)),
    IconSource("iconoir", _pkg("iconoir", "1.2.11"), "line", suffixes=("solid",)),
    IconSource("mingcute", _pkg("mingcute", "1.2.8"), "line"),
    IconSource("fa6-solid", _pkg("fa6-solid", "1.2.4"), "filled"),
    IconSource("healthicons", _pkg("healthicons", "1.2.13"), "filled", ("filled",)),
    IconSource("medical-icon", _pkg("medical-icon", "1.2.0"), "filled"),
    IconSource("maki", _pkg("maki", "1.2.5"), "filled"),
    IconSource("uim", _pkg("uim", "1.2.3"), "duotone"),
    IconSource("pixelarticons", _pkg("pixelarticons", "1.2.9"), "pixel", suffixes=("sharp",)),
    IconSource("streamline-pixel", _pkg("streamline-pixel", "1.2.0"), "pixel"),
    IconSource("streamline-plump", _pkg("streamline-plump", "1.2.0"), "line", ("line",)),
    IconSource("streamline-flex", _pkg("streamline-flex", "1.2.3"), "line", ("line",)),
    IconSource("flat-color-icons", _pkg("flat-color-icons", "1.2.3"), "color", color=True),
    IconSource("fluent-color", _pkg("fluent-color", "1.2.21"), "color", color=True),
    IconSource("streamline-ultimate-color", _pkg("streamline-ultimate-color", "1.2.2"), "color", color=True),
    IconSource(
        "streamline-freehand-color", _pkg("streamline-freehand-color", "1.2.2"), "hand-drawn", color=True
    ),
    IconSource("icon-park-twotone", _pkg("icon-park-twotone", "1.2.4"), "duotone"),
    IconSource("duo-icons", _pkg("duo-icons", "1.2.2"), "duotone"),
    IconSource("meteocons", _pkg("meteocons", "1.2.4"), "color", ("line",), color=True),
)

EVALUATION_ONLY = "the style-learning evaluation set of issue 12: never trained on"
# Sets refused by name, with the reason the error gives. The first two must never reach training data.
EXCLUDED_SETS: dict[str, str] = {
    "fluent-emoji-high-contrast": EVALUATION_ONLY,
    "emojione-monotone": EVALUATION_ONLY,
    **dict.fromkeys(
        ("simple-icons", "logos", "skill-icons", "devicon", "devicon-plain", "cib", "fa6-brands",
         "fa-brands", "bxl", "ri-brands", "streamline-logos", "token-branded", "cryptocurrency-color"),
        "a brand/logo set",
    ),
    **dict.fromkeys(
        ("flag", "flagpack", "circle-flags", "cif", "fi", "emojione-flags", "twemoji-flags"), "a flag set"
    ),
    **dict.fromkeys(
        ("vscode-icons", "catppuccin", "material-icon-theme", "file-icons", "bxs-file", "teenyicons-files"),
        "a file-type set",
    ),
}


def excluded_reason(name: str) -> str | None:
    """Why an iconify prefix or package (`@iconify-json/<prefix>`) may not be used, else None."""
    return EXCLUDED_SETS.get(name.removeprefix("@iconify-json/"))


def refuse_excluded(names: list[str]) -> None:
    """Raise DataError naming the first excluded set or package among `names`."""
    for name in names:
        if reason := excluded_reason(name):
            raise DataError(f"{name} is excluded: {reason}")


def select_icon_sets(names: tuple[str, ...] | None) -> list[IconSource]:
    """The named sets in registry order (all when None); excluded or unknown names raise DataError."""
    if names is None:
        return list(ICON_SETS)
    refuse_excluded(list(names))
    known = {s.prefix: s for s in ICON_SETS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DataError(f"unknown icon set {', '.join(unknown)}; choose from {', '.join(known)}")
    return [s for s in ICON_SETS if s.prefix in names]
