"""Errors keypaint shows to people.

Every error a user can cause derives from :class:`KeypaintError`; front ends print its message as one
line (CLI exit code 2, HTTP 4xx) instead of a traceback.
"""

from __future__ import annotations


class KeypaintError(Exception):
    """An error caused by input that a user can fix; the message is shown as-is."""


class InvalidParams(KeypaintError, ValueError):
    """Generation parameters that cannot be run (checked before any heavy work)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class ModelError(KeypaintError):
    """A model that cannot be found, is unsafe to load, or is not a checkpoint keypaint understands."""


class ImageError(KeypaintError):
    """An input image or mask that cannot be read or does not fit the request."""


class OutputError(KeypaintError):
    """An output folder that cannot be written."""


class Cancelled(KeypaintError):
    """A generation was stopped by its caller between denoising steps."""
