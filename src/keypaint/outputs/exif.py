"""The EXIF block of keypaint's JPEG and WebP files, written by hand so every field has its proper type.

Pillow writes a UserComment given as bytes with type BYTE, which EXIF readers flag (exiftool -validate:
"Non-standard format (int8u)"); the EXIF 2.32 standard gives it type UNDEFINED: an 8-byte character code
(here "UNICODE\\0") and then the text. keypaint writes the infotext there as A1111 does: UNICODE, UTF-16 in
the file's big-endian byte order, the only form readers such as sd-parsers decode (they skip 8 bytes and
read UTF-16 BE whatever the code says). A JPEG also gets the tags EXIF requires of it (ExifVersion,
resolution, colour space ...), so validators find nothing missing.
"""

from __future__ import annotations

import struct

_ASCII, _SHORT, _LONG, _RATIONAL, _UNDEFINED = 2, 3, 4, 5, 7
_EXIF_IFD = 0x8769
Entry = tuple[int, int, int, bytes]  # tag, type, count, value bytes (big-endian)


def user_comment(text: str) -> bytes:
    """EXIF UserComment as A1111 writes it: the character code "UNICODE\\0", then UTF-16 big-endian."""
    return b"UNICODE\0" + text.encode("utf-16-be")


def exif_block(infotext: str, *, size: tuple[int, int], jpeg: bool, description: str | None = None,
               software: str | None = None) -> bytes:
    """The APP1/EXIF chunk payload ("Exif\\0\\0" + a big-endian TIFF structure) for one picture."""
    width, height = size
    ifd0: list[Entry] = []
    if description is not None:
        ifd0.append(_ascii(0x010E, description))  # ImageDescription
    if software is not None:
        ifd0.append(_ascii(0x0131, software))  # Software
    exif: list[Entry] = [
        (0x9000, _UNDEFINED, 4, b"0232"),  # ExifVersion 2.32
        (0x9286, _UNDEFINED, len(comment := user_comment(infotext)), comment),  # UserComment
        (0xA000, _UNDEFINED, 4, b"0100"),  # FlashpixVersion 1.0
        (0xA001, _SHORT, 1, struct.pack(">H", 1)),  # ColorSpace: sRGB
        (0xA002, _LONG, 1, struct.pack(">I", width)),  # PixelXDimension
        (0xA003, _LONG, 1, struct.pack(">I", height)),  # PixelYDimension
    ]
    if jpeg:
        ifd0 += [
            (0x011A, _RATIONAL, 1, struct.pack(">II", 72, 1)),  # XResolution
            (0x011B, _RATIONAL, 1, struct.pack(">II", 72, 1)),  # YResolution
            (0x0128, _SHORT, 1, struct.pack(">H", 2)),  # ResolutionUnit: inches
            (0x0213, _SHORT, 1, struct.pack(">H", 1)),  # YCbCrPositioning: centred
        ]
        exif.append((0x9101, _UNDEFINED, 4, b"\x01\x02\x03\x00"))  # ComponentsConfiguration: Y Cb Cr
    header = b"MM\x00\x2a" + struct.pack(">I", 8)
    # the Exif IFD follows IFD0, whose length does not depend on the pointer's value
    first = _ifd([*ifd0, (_EXIF_IFD, _LONG, 1, b"\0\0\0\0")], 8)
    pointer = struct.pack(">I", 8 + len(first))
    first = _ifd([*ifd0, (_EXIF_IFD, _LONG, 1, pointer)], 8)
    return b"Exif\0\0" + header + first + _ifd(exif, 8 + len(first))


def _ascii(tag: int, text: str) -> Entry:
    value = text.encode("ascii", "replace") + b"\0"
    return tag, _ASCII, len(value), value


def _ifd(entries: list[Entry], start: int) -> bytes:
    """One IFD at offset `start` (from the TIFF header), its longer values right after it, word-aligned."""
    entries = sorted(entries)
    table_size = 2 + 12 * len(entries) + 4
    table, data = struct.pack(">H", len(entries)), b""
    for tag, kind, count, value in entries:
        if len(value) <= 4:
            field = value.ljust(4, b"\0")
        else:
            field = struct.pack(">I", start + table_size + len(data))
            data += value + b"\0" * (len(value) % 2)
        table += struct.pack(">HHI", tag, kind, count) + field
    return table + b"\0\0\0\0" + data
