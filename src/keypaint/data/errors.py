"""Errors raised while building or reading training data."""

from __future__ import annotations

from keypaint.errors import KeypaintError


class DataError(KeypaintError):
    """A data folder, tarball or caption that cannot be used; the message names the file."""
