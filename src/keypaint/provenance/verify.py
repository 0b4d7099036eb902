"""Checking a picture for keypaint's three marks: `keypaint verify` and the server's `POST /api/verify`.

Each mark is reported on its own, because each survives different things: metadata goes with any
re-save that drops chunks, the watermark survives that but not every edit, and C2PA credentials break
(on purpose) when a single pixel changes. A missing mark is a finding, not an error; only a file that
is not a readable picture raises (`ImageError`).
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from keypaint.errors import ImageError
from keypaint.provenance.settings import DIGITAL_SOURCE_TYPE, ProvenanceSettings
from keypaint.provenance.xmp import digital_source_type, embedded_metadata

Status = Literal["found", "missing", "tampered", "error"]
_IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# IPTC source types that say "made (in part) by a generative model or algorithm"
_AI_SOURCES = {_IPTC + name for name in ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia",
                                         "algorithmicMedia", "compositeSynthetic")}
_MAX_BYTES = 64 * 1024 * 1024  # pictures larger than this are not verified (server uploads included)


@dataclass(frozen=True)
class MarkReport:
    """One mark: its status and a one-line detail a person can read."""

    status: Status
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VerifyReport:
    """What `verify_image` found in one picture."""

    path: str
    format: str  # "PNG", "JPEG", "WEBP", ...
    size: tuple[int, int]
    metadata: MarkReport  # IPTC DigitalSourceType in XMP (and keypaint's JSON record)
    watermark: MarkReport
    c2pa: MarkReport
    disabled: list[str] = field(default_factory=list)  # marks the metadata says were turned off
    warnings: list[str] = field(default_factory=list)

    @property
    def marked(self) -> bool:
        """True when any mark says keypaint (or another AI tool, via IPTC) made the picture."""
        return any(m.status in ("found", "tampered") for m in (self.metadata, self.watermark, self.c2pa))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the server's response body)."""
        data = asdict(self)
        data["size"] = list(self.size)
        data["marked"] = self.marked
        return data


def verify_image(path: Path, *, settings: ProvenanceSettings | None = None) -> VerifyReport:
    """Check the picture at `path`; raises `ImageError` if it cannot be read as a picture."""
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise ImageError(f"{path} is larger than {_MAX_BYTES // 2**20} MiB")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"no such image: {path}") from None
    except (IsADirectoryError, PermissionError, OSError) as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
    return verify_bytes(data, name=str(path), settings=settings)


def verify_bytes(data: bytes, *, name: str = "upload", settings: ProvenanceSettings | None = None
                 ) -> VerifyReport:
    """`verify_image` for bytes already in memory (an upload)."""
    if len(data) > _MAX_BYTES:
        raise ImageError(f"{name} is larger than {_MAX_BYTES // 2**20} MiB")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image = opened.convert("RGB")
            fmt, xmp, record = opened.format or "?", opened.info.get("xmp"), _record(opened)
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not a picture (keypaint checks PNG, JPEG and WebP files)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read image {name}: {exc}") from None
    disabled = [str(m) for m in (record or {}).get("disabled", []) if isinstance(m, str)]
    metadata = _metadata_report(xmp, record)
    watermark = _watermark_report(image, disabled)
    c2pa = _c2pa_report(data, disabled, settings)
    warnings = _cross_check(record, watermark, c2pa)
    return VerifyReport(path=name, format=fmt, size=image.size, metadata=metadata, watermark=watermark,
                        c2pa=c2pa, disabled=disabled, warnings=warnings)


def _record(image: Image.Image) -> dict[str, Any] | None:
    """The `provenance` record of keypaint's JSON (PNG chunk, or inside the XMP of JPEG/WebP)."""
    data: Any = None
    if isinstance(image, PngImagePlugin.PngImageFile) and "keypaint" in image.text:
        try:
            data = json.loads(image.text["keypaint"])
        except json.JSONDecodeError:
            data = None
    if data is None:
        data = embedded_metadata(image.info.get("xmp"))
    record = data.get("provenance") if isinstance(data, dict) else None
    return record if isinstance(record, dict) else None


def _metadata_report(xmp: Any, record: dict[str, Any] | None) -> MarkReport:
    source = digital_source_type(xmp)
    if source == DIGITAL_SOURCE_TYPE:
        return MarkReport("found", "XMP: IPTC digital source type trainedAlgorithmicMedia",
                          {"digital_source_type": source})
    if source in _AI_SOURCES:
        return MarkReport("found", f"XMP: IPTC digital source type {source.removeprefix(_IPTC)}",
                          {"digital_source_type": source})
    if source:
        return MarkReport("missing", f"XMP declares {source.removeprefix(_IPTC)}, not an AI source type",
                          {"digital_source_type": source})
    if record and record.get("ai_generated"):
        return MarkReport("found", "keypaint metadata: AI-generated (no XMP packet)",
                          {"digital_source_type": record.get("digital_source_type")})
    return MarkReport("missing", "no XMP digital source type and no keypaint metadata")


def _watermark_report(image: Image.Image, disabled: list[str]) -> MarkReport:
    from keypaint.provenance import watermark

    found = watermark.detect(image)
    if found.found:
        payload = f"keypaint:{found.picture_id}" if found.picture_id else "keypaint (id unreadable)"
        return MarkReport("found", f"payload {payload} ({found.alignment}, {found.magic_errors} bit errors)",
                          {"payload": "keypaint", "picture_id": found.picture_id,
                           "bit_errors": found.magic_errors, "alignment": found.alignment})
    if "watermark" in disabled:
        return MarkReport("missing", "not embedded: turned off by a setting (recorded in the metadata)")
    return MarkReport("missing", "no keypaint watermark detected")


def _c2pa_report(data: bytes, disabled: list[str], settings: ProvenanceSettings | None) -> MarkReport:
    from keypaint.provenance import credentials

    result = credentials.read(data, settings)
    details = {k: v for k, v in asdict(result).items() if k != "status"}
    if result.status == "missing":
        why = "turned off by a setting (recorded in the metadata)" if "c2pa" in disabled else "no manifest"
        return MarkReport("missing", why)
    if result.status == "error":
        return MarkReport("error", f"manifest unreadable: {'; '.join(result.failures)}", details)
    if result.status == "tampered":
        return MarkReport("tampered", f"{result.state}: {', '.join(result.failures) or 'invalid'}", details)
    who = result.generator or "unknown generator"
    trust = "signer trusted" if result.state == "Trusted" else "signer not on a trust list (self-signed)"
    return MarkReport("found", f"{result.state}: created by {who}, {trust}", details)


def _cross_check(record: dict[str, Any] | None, watermark: MarkReport, c2pa: MarkReport) -> list[str]:
    """Marks that disagree with each other: e.g. metadata copied from another keypaint picture."""
    warnings = []
    recorded = (record or {}).get("picture_id")
    read = watermark.data.get("picture_id")
    if recorded and read and recorded != read:
        warnings.append(f"the watermark's picture id {read} differs from the metadata's {recorded}")
    if record and record.get("c2pa") and c2pa.status == "missing":
        warnings.append("the metadata says C2PA credentials were written, but there are none")
    return warnings
