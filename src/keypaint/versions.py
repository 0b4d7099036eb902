"""The installed versions of packages, recorded so that a picture or an adapter says what made it.

Below every other keypaint module: it imports nothing from keypaint.
"""

from __future__ import annotations

from importlib import metadata


def package_version(package: str) -> str:
    """The installed version of `package`, or "unknown"."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
