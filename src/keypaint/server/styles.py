"""Styles for the style picker: named keyword sets added to the user's own keywords.

A style is only words: it adds keywords (and negative keywords) to the prompt, so the picture's infotext
shows exactly what the model was asked, and "use these settings again" needs nothing but the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Style:
    name: str
    keywords: tuple[str, ...]
    negative: tuple[str, ...] = ()


STYLES: dict[str, Style] = {
    style.name: style
    for style in (
        Style("none", ()),
        Style("emoji", ("emoji", "flat colors", "simple shapes", "centered"), ("photo", "text")),
        Style("photo", ("photograph", "natural light", "sharp focus"), ("drawing", "cartoon")),
        Style("watercolor", ("watercolor painting", "soft edges", "paper texture")),
        Style("pixel art", ("pixel art", "limited palette", "crisp pixels"), ("blurry",)),
        Style("line art", ("line art", "black ink", "white background"), ("color",)),
        Style("3d render", ("3d render", "soft shadows", "studio lighting")),
    )
}


def apply_style(prompt: str, negative: str, style: str | None) -> tuple[str, str]:
    """`prompt` and `negative` with the style's keywords appended (comma-joined, as keywords are)."""
    if not style or style == "none":
        return prompt, negative
    chosen = STYLES[style]
    return _join(prompt, chosen.keywords), _join(negative, chosen.negative)


def _join(text: str, extra: tuple[str, ...]) -> str:
    return ", ".join(part for part in (text.strip(), *extra) if part)
