"""Reader for scheme-1 watermarks (keypaint before scheme 2), as saved: files marked then stay verifiable.

Scheme 1 embedded 103 bits ("keypaint", a 32-bit id, a 7-bit check) in raster order over the 8x8 pixel
blocks of luma (step 32) and chroma U (step 28, offset 128.125), with the invisible-watermark library's
dwtDctSvd rule. Only the grid as saved is read here (one alignment: cheap); a crop or a halving of a
scheme-1 picture is not searched for. A picture counts as marked when at least 40 of the 64 "keypaint"
bits got votes and at most 3 of those are wrong: by chance about 2e-15 per channel group when all 64 read.
"""

from __future__ import annotations

import hashlib
import struct

import cv2
import numpy as np
import pywt

PAYLOAD_BITS = 103
CHANNELS: dict[int, tuple[float, float]] = {0: (32.0, 0.0), 1: (28.0, 128.125)}  # index -> (step, offset)
MIN_MAGIC_READ = 40
MAX_MAGIC_ERRORS = 3
_MAGIC_BITS = np.unpackbits(np.frombuffer(b"keypaint", np.uint8)).astype(bool)
_UNDECIDED = 0.05  # |sum of soft votes| below this leaves a bit unread


def read_as_saved(rgb: np.ndarray) -> tuple[str | None, int] | None:
    """(picture id or None when its bits did not all read, "keypaint" bit errors) if marked, else None."""
    yuv = cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_BGR2YUV)
    votes = [_block_votes(yuv[..., index] + offset, step) for index, (step, offset) in CHANNELS.items()]
    if votes[0].size == 0:
        return None
    rows, cols = votes[0].shape
    residue = (np.arange(rows)[:, None] * cols + np.arange(cols)[None, :]).ravel() % PAYLOAD_BITS
    totals = [np.bincount(residue, weights=v.ravel(), minlength=PAYLOAD_BITS) for v in votes]
    best: tuple[int, str | None] | None = None
    for total in (sum(totals), *totals):  # both channels together, then each alone
        bits, decided = total > 0, np.abs(total) > _UNDECIDED
        read = int(decided[:64].sum())
        errors = int(((bits[:64] != _MAGIC_BITS) & decided[:64]).sum())
        if read < MIN_MAGIC_READ or errors > MAX_MAGIC_ERRORS:
            continue
        picture_id = _id_of(bits, decided)
        if best is None or (picture_id is None, errors) < (best[1] is None, best[0]):
            best = (errors, picture_id)
    return None if best is None else (best[1], best[0])


def _block_votes(channel: np.ndarray, step: float) -> np.ndarray:
    """Per 8x8 block, -sin(2 pi (s mod step) / step) of the low band's largest singular value s."""
    rows, cols = channel.shape[0] // 8, channel.shape[1] // 8
    if rows == 0 or cols == 0:
        return np.zeros((0, 0), np.float32)
    low, _ = pywt.dwt2(channel[: rows * 8, : cols * 8], "haar")
    top = np.linalg.svd(low.reshape(rows, 4, cols, 4).transpose(0, 2, 1, 3), compute_uv=False)[..., 0]
    return -np.sin(2 * np.pi * (top % step) / step)


def _id_of(bits: np.ndarray, decided: np.ndarray) -> str | None:
    """The id (8 hex digits) if all its bits and its 7-bit check were read and agree, else None."""
    value = int.from_bytes(np.packbits(bits[64:96].astype(np.uint8)).tobytes(), "big")
    check = int(np.packbits(bits[96:].astype(np.uint8))[0]) >> 1
    expected = hashlib.sha256(struct.pack(">I", value)).digest()[0] >> 1
    return f"{value:08x}" if bool(decided[64:].all()) and check == expected else None
