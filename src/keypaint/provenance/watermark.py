"""The invisible watermark: "keypaint" and a 32-bit picture id hidden in the pixels.

Embedding uses the `invisible-watermark` library's dwtDctSvd method (the family SD's reference scripts use;
chosen over dwtDct and rivaGan by measurement, see docs/provenance.md): a channel goes through a Haar DWT,
the low band is cut into 4x4 blocks (8x8 pixels), and each block's largest singular value is quantised so
that it carries one payload bit; the payload repeats over all blocks in raster order. keypaint marks two
channels, luma (Y) and the blue difference (U), with the library's `encode_frame`.

What is keypaint's own, and why (figures in docs/provenance.md):
- the wavelet transform around `encode_frame`: the library's `encode` puts the horizontal and vertical
  detail bands back swapped and truncates to uint8 (wrapping values past 255), which alone costs many dB
  of PSNR; here the picture stays in float and is rounded once. It also lets 128 px pictures (the built-in
  model's) be marked: the library's wrapper refuses anything under 256x256.
- offsets that put flat white at a 1-bit centre, and a chroma-preserving clip (see CHANNELS and
  `_fit_range_keep_chroma`): emoji sit on white, where a raised value would be clipped away.
- the detector: the library's rule (largest singular value modulo the step; an orthonormal DCT leaves
  singular values unchanged, so the DCT is skipped) with soft votes, vectorised, reading both channels
  together and each alone, plus a search over the 8 px block grid, the original picture's row length
  and the payload's phase, so crops and halvings can still be read. A picture counts as marked only when
  the 64 "keypaint" bits match (see MAX_MAGIC_ERRORS).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass

import cv2
import numpy as np
import pywt
from imwatermark.dwtDctSvd import EmbedDwtDctSvd
from PIL import Image

MAGIC = b"keypaint"
# "keypaint" (64 bits) + a 32-bit id + a 7-bit check of the id = 103 bits. 103 is prime on purpose: the
# library repeats the payload in raster order, so a length sharing factors with the number of block columns
# (96 with 16 or 64 columns) ties each bit to a few columns, and a crop that cuts those off erases the bit.
PAYLOAD_BITS = 8 * (len(MAGIC) + 4) + 7
METHOD = "dwtDctSvd"
SCHEME = 1  # bump when the payload, channels, steps or offsets change: older marks need the older reader
# YUV channels carrying the mark -> (quantisation step of the block's singular value, offset added to the
# channel). Luma survives JPEG better (chroma is subsampled and coarsely quantised); chroma carries the
# id more reliably through crops and halvings: measured, docs/provenance.md. The offsets put a flat white
# block at 3/4 of the step, the centre of a 1 bit: on white a mark then only ever darkens, nothing clips.
# Luma's offset is 0, as in the library (which works on uint8 YUV), so its own decoder reads our luma mark.
CHANNELS: dict[int, tuple[float, float]] = {0: (32.0, 0.0), 1: (28.0, 128.125)}
# A picture is marked when, at the best alignment, at least MIN_MAGIC_READ of the 64 "keypaint" bits got
# votes (a crop of a small picture leaves some with none) and at most MAX_MAGIC_ERRORS of those are wrong.
# By chance: sum(C(64, k), k <= 3) / 2**64 ~ 2e-15 per alignment when all 64 bits read, ~1e-8 when only 40
# do; a full search tries up to ~1.5e6 alignments (128 px, three channel groups), so an unmarked picture
# reads as marked well under 1e-6 of the time in the usual case. Measured: 0 of 132 (docs/provenance.md).
MIN_MAGIC_READ = 40
MAX_MAGIC_ERRORS = 3
_MAGIC_BITS = np.unpackbits(np.frombuffer(MAGIC, np.uint8)).astype(np.float32)
_UNDECIDED = 0.05  # |sum of soft votes| below this leaves a bit unread
_SEARCH_WINDOW = 512  # pixels: the alignment search reads at most this much of a picture, centred
_UPSCALE_BELOW = 384  # pictures smaller than this are also read at 2x, undoing a halving (costly when big)
_GRID = 8  # pixels per block: 4x4 blocks of the half-resolution low band


@dataclass(frozen=True)
class WatermarkResult:
    """What the detector read from a picture."""

    found: bool
    picture_id: str | None = None  # 8 hex digits; None when not found or the id's bits did not all read
    magic_errors: int | None = None  # bit errors in the 64 "keypaint" bits of the best alignment
    alignment: str | None = None  # how it was read, e.g. "as saved" or "scale 2x, grid +3+5"


def picture_id_for(recipe: dict) -> str:
    """The 32-bit id (8 hex digits) tying the watermark to a picture's JSON metadata.

    Derived from the picture's recipe (its own params, seed included, and the model), not from the time:
    re-making a picture from its metadata must give the same pixels, watermark included.
    """
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).digest()
    return digest[:4].hex()


def payload_bits(picture_id: str) -> list[int]:
    """The 103 payload bits: "keypaint", the id (most significant bit first), then the id's 7-bit check."""
    raw = MAGIC + struct.pack(">I", int(picture_id, 16)) + bytes([_check(int(picture_id, 16)) << 1])
    return [int(b) for b in np.unpackbits(np.frombuffer(raw, np.uint8))][:PAYLOAD_BITS]


def _check(picture_id: int) -> int:
    """7 bits of the id's hash: a misread id passes this by chance 1 time in 128."""
    return hashlib.sha256(struct.pack(">I", picture_id)).digest()[0] >> 1


def embed(image: Image.Image, picture_id: str) -> Image.Image:
    """`image` with the payload embedded (RGB out; an alpha channel is dropped: pictures here are RGB)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    rows, cols = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
    yuv = cv2.cvtColor(rgb[..., ::-1].copy(), cv2.COLOR_BGR2YUV)
    embedder = EmbedDwtDctSvd(payload_bits(picture_id), wmLen=PAYLOAD_BITS)
    for index, (step, offset) in CHANNELS.items():
        low, (horizontal, vertical, diagonal) = pywt.dwt2(yuv[:rows, :cols, index] + offset, "haar")
        embedder.encode_frame(low, step)
        yuv[:rows, :cols, index] = pywt.idwt2((low, (horizontal, vertical, diagonal)), "haar") - offset
    rgb = cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR)[..., ::-1]
    rgb = _fit_range_keep_chroma(rgb)
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), "RGB")


def _fit_range_keep_chroma(rgb: np.ndarray) -> np.ndarray:
    """Bring pixels back into 0..255 by moving all three channels equally: that changes luma only, so a
    chroma mark that pushed a near-white blue past 255 survives (instead of being clipped away)."""
    over = np.maximum(rgb.max(axis=-1, keepdims=True) - 255, 0)
    under = np.maximum(-rgb.min(axis=-1, keepdims=True), 0)
    return rgb - over + under


def detect(image: Image.Image, *, search: bool = True) -> WatermarkResult:
    """Look for the payload; `search=False` reads only the grid as saved (fast, for untouched files)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    best = _read(_channels(rgb), shifts=[(0, 0)], label="as saved")
    if best.found or not search:
        return best
    for scale in (1, 2):
        if scale == 2 and min(rgb.shape[:2]) >= _UPSCALE_BELOW:
            break
        scaled = rgb if scale == 1 else cv2.resize(rgb, None, fx=scale, fy=scale,
                                                   interpolation=cv2.INTER_CUBIC)
        # the search reads a centre window at most _SEARCH_WINDOW wide: a crop, which it handles anyway,
        # and what keeps a 4000 px photo from costing minutes
        top = max(0, (scaled.shape[0] - _SEARCH_WINDOW) // 2)
        left = max(0, (scaled.shape[1] - _SEARCH_WINDOW) // 2)
        window = scaled[top:top + _SEARCH_WINDOW, left:left + _SEARCH_WINDOW]
        shifts = [(dy, dx) for dy in range(_GRID) for dx in range(_GRID)]
        cols = scaled.shape[1] // _GRID  # the original's row length lies in [cols, 1.5 cols]
        result = _read(_channels(window), shifts=shifts, label=f"scale {scale}x",
                       row_range=(cols, cols * 3 // 2 + 2))
        if result.found:
            return result
        if (result.magic_errors or 99) < (best.magic_errors or 99):
            best = result
    return best


def _channels(rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """(channel + offset, step) for each marked channel."""
    yuv = cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_BGR2YUV)
    return [(yuv[..., index] + offset, step) for index, (step, offset) in CHANNELS.items()]


def _block_votes(channel: np.ndarray, step: float, dy: int, dx: int) -> np.ndarray:
    """Per 8x8 pixel block, a soft vote in [-1, 1] for its bit (+1: surely 1, 0: on the decision boundary).

    The library's hard rule reads bit 1 when (s mod step) > step / 2, with the embedded values at 1/4 and
    3/4 of the step; -sin(2 pi (s mod step) / step) is +1 and -1 at those points and 0 at the boundaries,
    so blocks that a JPEG pushed near a boundary count less instead of flipping a vote.
    """
    part = channel[dy:, dx:]
    rows, cols = part.shape[0] // _GRID, part.shape[1] // _GRID
    if rows == 0 or cols == 0:
        return np.zeros((0, 0), np.float32)
    low, _ = pywt.dwt2(part[: rows * _GRID, : cols * _GRID], "haar")
    blocks = low.reshape(rows, 4, cols, 4).transpose(0, 2, 1, 3)
    top = np.linalg.svd(blocks, compute_uv=False)[..., 0]
    return -np.sin(2 * np.pi * (top % step) / step)


def _read(channels: list[tuple[np.ndarray, float]], shifts: list[tuple[int, int]], label: str,
          row_range: tuple[int, int] | None = None) -> WatermarkResult:
    """Best alignment over grid shifts, the original picture's row length and the payload's phase.

    Block (i, j) of the original grid carried bit (i * row_length + j) mod 103. Reading a crop, the offset
    of the first kept block only rotates that (the phase); the original row length is unknown, and lengths
    up to 1.5x this picture's (a crop to 2/3) are tried. Blocks' soft votes are summed per residue, over
    all channels and for each channel alone: a JPEG flattens chroma into votes that all lean one way,
    which would drown the luma votes that survived it.
    """
    width = PAYLOAD_BITS
    magic = _MAGIC_BITS.astype(bool)
    phases = (np.arange(width)[None, :] - np.arange(width)[:, None]) % width  # [phase, bit] -> residue
    names = ["YUV"[index] for index in CHANNELS]
    best: tuple[tuple[bool, bool, int, int], str | None, str] | None = None  # rank, id, how
    for dy, dx in shifts:
        votes = [_block_votes(channel, step, dy, dx) for channel, step in channels]
        if votes[0].size == 0:
            continue
        rows, cols = votes[0].shape
        i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        if row_range is None:
            row_lengths, phase_rows = [cols], phases[:1]  # as saved: nothing was cut off, phase 0 only
        else:
            row_lengths, phase_rows = sorted({n % width for n in range(*row_range)}), phases
        for row_length in row_lengths:
            residue = ((i * row_length + j) % width).ravel()
            totals = [np.bincount(residue, weights=v.ravel(), minlength=width)[phase_rows] for v in votes]
            groups = [("+".join(names), sum(totals))]
            if len(totals) > 1:
                groups += list(zip(names, totals, strict=True))
            for group, total in groups:
                bits, decided = total > 0, np.abs(total) > _UNDECIDED  # no vote (or a near tie): unread
                read = decided[:, :64].sum(axis=1)
                errors = ((bits[:, :64] != magic) & decided[:, :64]).sum(axis=1)
                errors = np.where(read >= MIN_MAGIC_READ, errors, 64)
                k = int(np.lexsort((-read, errors))[0])
                picture_id = _id_of(bits[k], decided[k]) if errors[k] <= MAX_MAGIC_ERRORS else None
                # found first, then one whose id reads, then fewer errors, then more bits read
                rank = (bool(errors[k] > MAX_MAGIC_ERRORS), picture_id is None, int(errors[k]), -int(read[k]))
                if best is None or rank < best[0]:
                    best = (rank, picture_id, f"{label}, grid +{dy}+{dx}, {group}")
        if best is not None and best[0][:2] == (False, False) and best[0][2] <= 1:
            break
    if best is None or best[0][0]:
        return WatermarkResult(found=False, magic_errors=None if best is None else best[0][2])
    (_, _, errors, _), picture_id, how = best
    return WatermarkResult(found=True, picture_id=picture_id, magic_errors=errors, alignment=how)


def _id_of(bits: np.ndarray, decided: np.ndarray) -> str | None:
    """The id (8 hex digits) if all its bits and its 7-bit check were read and agree, else None."""
    value = int.from_bytes(np.packbits(bits[64:96].astype(np.uint8)).tobytes(), "big")
    check = int(np.packbits(bits[96:].astype(np.uint8))[0]) >> 1
    return f"{value:08x}" if bool(decided[64:].all()) and check == _check(value) else None
