"""What marks a saved picture gets. Every mark is on unless a caller turns it off explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from keypaint.errors import KeypaintError

# IPTC's term for "created by a model trained on sampled content" (what the EU AI Act's marking is about)
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
AI_NOTICE = "Made with generative AI (keypaint); IPTC digital source type: trainedAlgorithmicMedia"

ENV_CERT = "KEYPAINT_C2PA_CERT"  # PEM: the signing certificate, then its chain up to (not incl.) the root
ENV_KEY = "KEYPAINT_C2PA_KEY"  # PEM: the signing certificate's private key
ENV_ALG = "KEYPAINT_C2PA_ALG"  # es256 (default), es384, es512, ps256, ps384, ps512, ed25519


class ProvenanceError(KeypaintError):
    """A mark that was asked for could not be made (e.g. an unreadable signing key)."""


@dataclass(frozen=True)
class ProvenanceSettings:
    """Which marks `save_generated` writes. The XMP/EXIF "made by AI" fields are always written.

    Turning a mark off is recorded in the picture's JSON metadata (`provenance.disabled`), so a picture
    without a watermark or credentials says that this was a choice.
    """

    watermark: bool = True  # invisible watermark carrying "keypaint" + the picture id
    c2pa: bool = True  # signed C2PA content credentials
    c2pa_cert: Path | None = None  # None: $KEYPAINT_C2PA_CERT, else the self-signed one under $KEYPAINT_HOME
    c2pa_key: Path | None = None  # None: $KEYPAINT_C2PA_KEY, else the self-signed one
    c2pa_alg: str | None = None  # None: $KEYPAINT_C2PA_ALG, else es256
    home: Path | None = None  # keypaint's data folder (None: $KEYPAINT_HOME)

    @property
    def disabled(self) -> list[str]:
        """The marks turned off, as recorded in the metadata."""
        return [name for name, on in (("watermark", self.watermark), ("c2pa", self.c2pa)) if not on]

    def signing_files(self) -> tuple[Path, Path] | None:
        """The user's own certificate chain and key (settings, else env vars), or None for the local ones."""
        cert = self.c2pa_cert or _env_path(ENV_CERT)
        key = self.c2pa_key or _env_path(ENV_KEY)
        if cert is None and key is None:
            return None
        if cert is None or key is None:
            raise ProvenanceError(
                f"C2PA signing needs both a certificate and a key: set {ENV_CERT} and {ENV_KEY} together"
            )
        return cert, key

    def algorithm(self) -> str:
        return (self.c2pa_alg or os.environ.get(ENV_ALG) or "es256").lower()


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None
