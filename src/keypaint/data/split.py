"""The held-out split: a hash of (emoji, style), so it never changes between builds or machines."""

from __future__ import annotations

import hashlib


def is_heldout(hexcode: str, style: str, fraction: float = 0.05) -> bool:
    """True for about `fraction` of (emoji, style) pairs; sha1(f"{hexcode}:{style}") decides."""
    digest = hashlib.sha1(f"{hexcode}:{style}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64
