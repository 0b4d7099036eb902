"""The invisible watermark: "keypaint" and a 32-bit picture id hidden in the pixels (scheme 2).

Embedding uses the `invisible-watermark` library's dwtDctSvd method (the family SD's reference scripts use;
chosen over dwtDct and rivaGan by measurement, see docs/provenance.md): a channel goes through a Haar DWT,
the low band is cut into 4x4 blocks (8x8 pixels), and each block's largest singular value is quantised so
that it carries one bit (the library's `encode_frame`, one block at a time). What each block carries is
watermark_layout.py's: in luma a whitened "keypaint" pattern (3 blocks of 4) for detection, and a 48-bit
word (the id and a 16-bit check) in the other luma blocks and in every chroma (U) block.

What is keypaint's own, and why (figures in docs/provenance.md):
- the wavelet transform around the library's quantiser: its `encode` puts the horizontal and vertical
  detail bands back swapped and truncates to uint8, which alone costs many dB of PSNR; here the picture
  stays in float and is rounded once. It also marks 128 px pictures, which its wrapper refuses.
- clipping to 0..255 per channel, then re-embedding the blocks the clip moved off their bit (PASSES):
  the built-in model paints saturated colours (orange is R = 255, B = 0), where a mark is only reachable
  through the channels that are not at a limit; scheme 1's clip, moving all three channels equally, left
  about 1 luma block in 5 on the wrong bit.
- the detector. JPEG quality 75 puts a fifth of a built-in 128 px picture's luma blocks (up to 37%) on
  the wrong side of their bit; a per-bit majority then fails, but the correlation of all the luma votes
  with the pattern's signs survives. Its bound: the
  pattern's signs are pseudo-random (SHA-256), so for a picture that was not made against them, Hoeffding's
  inequality gives P(z >= t) <= exp(-t**2 / 2) per alignment tried, whatever the picture. The thresholds
  below spend a false-positive budget of 1e-6 per picture read over every alignment the detector tries.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pywt
from PIL import Image

from keypaint.provenance import watermark_layout as layout
from keypaint.provenance import watermark_v1

MAGIC = layout.MAGIC
PAYLOAD_BITS = 8 * len(MAGIC) + layout.WORD_BITS  # "keypaint" + 32-bit id + 16-bit check = 112
METHOD = "dwtDctSvd"
SCHEME = 2  # bump when the layout, channels, steps or offsets change: older marks need the older reader
BLOCK = 8  # pixels per block: 4x4 blocks of the half-resolution low band
# YUV channel -> (quantisation step of a block's singular value, offset added to the channel). A flat block
# of value v has singular value 8 v, so luma's step 2040 / 56.75 puts white (8 * 255 = 2040) at 3/4 of a
# step, the centre of a 1 bit: on white a mark only ever darkens, nothing clips. Luma's offset is 0, as in
# the library (which works on uint8 YUV), so its own decoder reads our luma blocks. Chroma's offset puts
# grey (U = 0.5 in OpenCV's float YUV) at 3/4 of its step likewise. Steps chosen by measurement on 200
# built-in pictures (docs/provenance.md): luma 40 rather than 36 brings the lowest PSNR down to 40.0 for
# +0.3 of median z after JPEG q75; chroma 20 rather than 24 gains 0.45 dB but reads the id of flat
# pictures after JPEG q75 far less often (45% of 20 stand-ins, not 79% of 100).
CHANNELS: dict[int, tuple[float, float]] = {0: (2040 / 56.75, 0.0), 1: (24.0, 1.75)}
PASSES = 4  # embedding passes: the first marks every block, later ones the blocks a clip moved off their bit
_ON_BIT = 0.95  # a block whose vote for its bit is at least this needs no further pass
# the detector weighs a luma block's vote by 1 / (1 + (sd / _TEXTURE) ** 2), sd the standard deviation of
# its 4x4 low band: after JPEG q75 flat blocks' votes lean 0.9 towards their bit, those of blocks whose
# pixels vary by over 32 grey levels 0.1 or less (100 built-in pictures); the weights depend on the picture
# alone, so the false-positive bound still holds.
# Chroma votes (the id only, which JPEG erases anyway) read no better weighted and stay as they are.
_TEXTURE = 32.0
FALSE_POSITIVE_BOUND = 1e-6  # per picture read, split evenly between the two stages of `detect`
_SEARCH_TESTS = 2 * BLOCK * BLOCK * layout.KEY * layout.KEY  # 2 scales x 64 grid shifts x 48x48 phases
AS_SAVED_THRESHOLD = math.sqrt(2 * math.log(2 / FALSE_POSITIVE_BOUND))  # 1 test: 5.39
SEARCH_THRESHOLD = math.sqrt(2 * math.log(2 * _SEARCH_TESTS / FALSE_POSITIVE_BOUND))  # 7.36
_SEARCH_WINDOW = 512  # pixels: the alignment search reads at most this much of a picture, centred
_UPSCALE_BELOW = 384  # pictures smaller than this are also read at 2x, undoing a halving (costly when big)


@dataclass(frozen=True)
class WatermarkResult:
    """What the detector read from a picture."""

    found: bool
    picture_id: str | None = None  # 8 hex digits; None when not found or the id did not pass its check
    magic_errors: int | None = None  # "keypaint" bits read wrong at the best alignment (informative)
    alignment: str | None = None  # how it was read, e.g. "as saved" or "scale 2x, grid +3+5, phase 0,2"
    score: float | None = None  # z: the correlation with the pattern, in standard deviations of chance
    scheme: int | None = None  # which scheme's mark was found


def picture_id_for(recipe: dict) -> str:
    """The 32-bit id (8 hex digits) tying the watermark to a picture's JSON metadata.

    Derived from the picture's recipe (its own params, seed included, and the model), not from the time:
    re-making a picture from its metadata must give the same pixels, watermark included.
    """
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).digest()
    return digest[:4].hex()


def payload_bits(picture_id: str) -> list[int]:
    """The 112 payload bits: "keypaint", the id (most significant bit first), then its 16-bit check."""
    value = int(picture_id, 16)
    raw = MAGIC + struct.pack(">IH", value, layout.check_of(value))
    return [int(b) for b in np.unpackbits(np.frombuffer(raw, np.uint8))]


def embed(image: Image.Image, picture_id: str) -> Image.Image:
    """`image` with the payload embedded (RGB out; an alpha channel is dropped: pictures here are RGB)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    rows, cols = rgb.shape[0] // BLOCK, rgb.shape[1] // BLOCK
    if rows == 0 or cols == 0:
        raise ValueError(f"a {image.width}x{image.height} picture is too small to watermark (8x8 at least)")
    height, width = rows * BLOCK, cols * BLOCK
    luma, chroma = layout.block_bits(picture_id, rows, cols)
    for _ in range(PASSES):
        yuv = _yuv(rgb)
        for index, bits in ((0, luma), (1, chroma)):
            step, offset = CHANNELS[index]
            low, details = pywt.dwt2(yuv[:height, :width, index] + offset, "haar")
            _quantise_off_bit_blocks(low, bits, step)
            yuv[:height, :width, index] = pywt.idwt2((low, details), "haar") - offset
        rgb = np.clip(cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR)[..., ::-1], 0, 255)
    return Image.fromarray(np.rint(rgb).astype(np.uint8), "RGB")


def _quantise_off_bit_blocks(low: np.ndarray, bits: np.ndarray, step: float) -> None:
    """The library's quantiser, in place, on each 4x4 block of `low` whose vote is not yet firmly its bit."""
    agreement = _votes_of_low(low, step) * (2 * bits - 1)
    for i, j in zip(*np.nonzero(agreement < _ON_BIT), strict=True):
        block = low[4 * i : 4 * i + 4, 4 * j : 4 * j + 4]  # a view: encode_frame writes through it
        _dwt_dct_svd()([int(bits[i, j])], wmLen=1).encode_frame(block, step)


def detect(image: Image.Image, *, search: bool = True) -> WatermarkResult:
    """Look for the payload; `search=False` reads only the grid as saved (fast, for untouched files).

    Stage 1 reads the grid as saved (JPEG and PNG re-saves keep it); stage 2 searches 64 grid shifts and
    every phase of the pattern, at 1x and (small pictures) 2x, for crops and halvings. Pictures marked by
    scheme 1 are read as saved.
    """
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    luma = _votes(_yuv(rgb)[..., 0], 0, 0, 0)
    if luma.size == 0:
        return WatermarkResult(found=False)
    z = float(_z_map(_fold(luma))[0, 0])
    if z >= AS_SAVED_THRESHOLD:
        return _result(rgb, 0, 0, (0, 0), z, "as saved")
    old = watermark_v1.read_as_saved(rgb)
    if old is not None:
        return WatermarkResult(
            found=True, picture_id=old[0], magic_errors=old[1], alignment="as saved", scheme=1
        )
    if not search:
        return WatermarkResult(found=False, score=z)
    best: tuple[float, np.ndarray, int, int, tuple[int, int], str] | None = None
    for scale in (1, 2):
        if scale == 2 and min(rgb.shape[:2]) >= _UPSCALE_BELOW:
            break
        scaled = rgb if scale == 1 else cv2.resize(rgb, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        # a centre window at most _SEARCH_WINDOW wide: a crop, which the phase search handles anyway, and
        # what keeps a 4000 px photo from costing minutes
        top = max(0, (scaled.shape[0] - _SEARCH_WINDOW) // 2)
        left = max(0, (scaled.shape[1] - _SEARCH_WINDOW) // 2)
        window = scaled[top : top + _SEARCH_WINDOW, left : left + _SEARCH_WINDOW]
        channel = _yuv(window)[..., 0]
        for dy in range(BLOCK):
            for dx in range(BLOCK):
                votes = _votes(channel, 0, dy, dx)
                if votes.size == 0:
                    continue
                zs = _z_map(_fold(votes))
                p, q = np.unravel_index(int(np.argmax(zs)), zs.shape)
                if best is None or zs[p, q] > best[0]:
                    best = (float(zs[p, q]), window, dy, dx, (int(p), int(q)), f"scale {scale}x")
        if best is not None and best[0] >= SEARCH_THRESHOLD:
            break
    if best is None or best[0] < SEARCH_THRESHOLD:
        return WatermarkResult(found=False, score=best[0] if best else z)  # the search includes as saved
    score, window, dy, dx, phase, label = best
    return _result(window, dy, dx, phase, score, f"{label}, grid +{dy}+{dx}, phase {phase[0]},{phase[1]}")


def _result(rgb: np.ndarray, dy: int, dx: int, phase: tuple[int, int], z: float, how: str) -> WatermarkResult:
    """A found mark: the id and the "keypaint" bit errors, read at its alignment."""
    yuv = _yuv(rgb)
    luma, chroma = _votes(yuv[..., 0], 0, dy, dx), _votes(yuv[..., 1], 1, dy, dx)
    return WatermarkResult(
        found=True,
        picture_id=layout.read_id(luma, chroma, phase),
        magic_errors=layout.magic_errors(luma, phase),
        alignment=how,
        score=round(z, 2),
        scheme=SCHEME,
    )


def _yuv(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_BGR2YUV)


def _votes(channel: np.ndarray, index: int, dy: int, dx: int) -> np.ndarray:
    """Soft votes of a channel's 8x8 blocks, grid starting at (dy, dx); luma's weighted by flatness."""
    step, offset = CHANNELS[index]
    part = channel[dy:, dx:]
    rows, cols = part.shape[0] // BLOCK, part.shape[1] // BLOCK
    if rows == 0 or cols == 0:
        return np.zeros((0, 0), np.float32)
    low, _ = pywt.dwt2(part[: rows * BLOCK, : cols * BLOCK] + offset, "haar")
    votes = _votes_of_low(low, step)
    if index != 0:
        return votes
    spread = low.reshape(rows, 4, cols, 4).std(axis=(1, 3))
    return votes / (1 + (spread / _TEXTURE) ** 2)


def _votes_of_low(low: np.ndarray, step: float) -> np.ndarray:
    """Per 4x4 block of a low band, a soft vote in [-1, 1] for its bit (+1: surely 1, 0: on the boundary).

    The library's rule reads bit 1 when (s mod step) > step / 2, with the embedded values at 1/4 and 3/4
    of the step; -sin(2 pi (s mod step) / step) is +1 and -1 at those points and 0 at the boundaries, so
    blocks that a JPEG pushed near a boundary count less instead of flipping a vote. (An orthonormal DCT
    leaves singular values unchanged, so the library's DCT is skipped.)
    """
    rows, cols = low.shape[0] // 4, low.shape[1] // 4
    blocks = low[: rows * 4, : cols * 4].reshape(rows, 4, cols, 4).transpose(0, 2, 1, 3)
    top = np.linalg.svd(blocks, compute_uv=False)[..., 0]
    return -np.sin(2 * np.pi * (top % step) / step)


def _fold(votes: np.ndarray) -> np.ndarray:
    """Votes summed per pattern position, for a picture whose first block is the pattern's (0, 0)."""
    a, b = layout.positions(*votes.shape)
    sums = np.bincount((a * layout.KEY + b).ravel(), weights=votes.ravel(), minlength=layout.KEY**2)
    return sums.reshape(layout.KEY, layout.KEY)


def _z_map(folded: np.ndarray) -> np.ndarray:
    """z[p, q]: the normalised correlation with the pattern if the picture's first block sat at (p, q).

    z = sum(sign * votes) / sqrt(sum(votes ** 2)) over the pattern's sync positions, for every phase at
    once by FFT (circular correlation over the 48x48 period). With the signs fair coins independent of
    the picture, P(z >= t) <= exp(-t**2 / 2) (Hoeffding) for each phase.
    """
    spectrum = np.conj(np.fft.fft2(folded))
    numerator = np.real(np.fft.ifft2(spectrum * np.fft.fft2(layout.SYNC_SIGNS)))
    sync = (~layout.ID_IN_LUMA).astype(float)
    energy = np.real(np.fft.ifft2(np.conj(np.fft.fft2(folded**2)) * np.fft.fft2(sync)))
    return numerator / np.sqrt(np.maximum(energy, 1e-9))


@functools.cache
def _dwt_dct_svd() -> type:
    """invisible-watermark's `EmbedDwtDctSvd` (the embedder Stable Diffusion's reference scripts use).

    The module is loaded from its file: the package's `__init__` also imports its RivaGAN model, and with
    it PyTorch (over a second of a cold start), which the DWT-DCT-SVD embedder does not use.
    """
    spec = importlib.util.find_spec("imwatermark")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("invisible-watermark is not installed", name="imwatermark")
    path = Path(next(iter(spec.submodule_search_locations))) / "dwtDctSvd.py"
    module_spec = importlib.util.spec_from_file_location("keypaint_imwatermark_dwtdctsvd", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.EmbedDwtDctSvd
