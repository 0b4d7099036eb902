"""What each 8x8 pixel block of a scheme-2 watermark carries, and how the id is read back from soft votes.

Blocks are addressed by their position in a 48x48-block pattern (KEY) that repeats over the picture; a crop
only moves the picture's first block somewhere in that pattern, and the detector finds where (the phase).

- luma, 3 blocks of 4: the detection pattern, "keypaint"'s 64 bits repeated over these blocks in raster
  order of the pattern (27 times; a 128 px picture holds each bit 2-4 times) and XORed with pseudo-random
  whitening bits. The whitening makes the pattern's signs
  look like fair coins that no picture can correlate with by chance, which is what the detector's
  false-positive bound rests on (watermark.py).
- luma, 1 block of 4, and chroma (U), every block: the 48-bit word, a 32-bit picture id and a 16-bit check,
  XORed with other whitening bits. Bit k of the word sits at the blocks where (9 a + b) mod 48 = k: a
  lattice, so any window of the picture holds every bit about equally often (any 16x16 blocks, a 128 px
  picture: 5-6 times in chroma, at least once in luma; any 12x12 blocks at least twice in chroma).

All pseudo-random bits come from SHA-256 of fixed labels: the same on every machine, no state.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

MAGIC = b"keypaint"
KEY = 48  # blocks: the pattern's period (384 px)
ID_BITS = 32
CHECK_BITS = 16
WORD_BITS = ID_BITS + CHECK_BITS
CHASE_BITS = 6  # a failed check retries the 2**6 flips of the 6 least certain bits; with the two readings
# of `read_id`, a misread id then passes the 16-bit check with chance 2 * 2**6 / 2**16 ~ 2e-3 (not 1/65536)
_LATTICE = 9  # bit of block (a, b) = (9 a + b) mod 48: of all row shifts, the evenest (see above)


def _bits(label: str, count: int) -> np.ndarray:
    """`count` pseudo-random bits (0/1, int64) from SHA-256 in counter mode over a fixed label."""
    out = bytearray()
    counter = 0
    while len(out) * 8 < count:
        out += hashlib.sha256(f"keypaint-watermark-2/{label}/{counter}".encode()).digest()
        counter += 1
    return np.unpackbits(np.frombuffer(bytes(out), np.uint8))[:count].astype(np.int64)


_A, _B = np.meshgrid(np.arange(KEY), np.arange(KEY), indexing="ij")
MAGIC_BITS = np.unpackbits(np.frombuffer(MAGIC, np.uint8)).astype(np.int64)
ID_IN_LUMA = (_A + 2 * _B) % 4 == 0  # [a, b] -> luma carries the word here, not the detection pattern
# [a, b] -> which of the 64 "keypaint" bits a sync block carries (word blocks: a placeholder, never read)
MAGIC_INDEX = (np.cumsum(~ID_IN_LUMA.ravel()).reshape(KEY, KEY) - 1) % 64
WORD_INDEX = (_LATTICE * _A + _B) % WORD_BITS  # [a, b] -> which bit of the word
LUMA_WHITENING = _bits("luma", KEY * KEY).reshape(KEY, KEY)
WORD_WHITENING = _bits("word", KEY * KEY).reshape(KEY, KEY)
SYNC_BITS = MAGIC_BITS[MAGIC_INDEX] ^ LUMA_WHITENING
# the detector's key: +1 where a sync block carries bit 1 (a vote of +1), -1 for bit 0, 0 on word blocks
SYNC_SIGNS = np.where(ID_IN_LUMA, 0.0, 2.0 * SYNC_BITS - 1)


def check_of(picture_id: int) -> int:
    """The 16-bit check of an id: the first bits of its SHA-256."""
    return int.from_bytes(hashlib.sha256(struct.pack(">I", picture_id)).digest()[:2], "big")


def word_bits(picture_id: str) -> np.ndarray:
    """The 48-bit word: the 32-bit id (most significant bit first), then its 16-bit check."""
    value = int(picture_id, 16)
    raw = struct.pack(">IH", value, check_of(value))
    return np.unpackbits(np.frombuffer(raw, np.uint8)).astype(np.int64)


def positions(rows: int, cols: int, phase: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Pattern coordinates (a, b) of a rows x cols block grid whose first block sits at `phase`."""
    i, j = np.meshgrid(np.arange(rows) + phase[0], np.arange(cols) + phase[1], indexing="ij")
    return i % KEY, j % KEY


def block_bits(picture_id: str, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """(luma bits, chroma bits) of a rows x cols block grid, each a 0/1 array of that shape."""
    a, b = positions(rows, cols)
    chroma = word_bits(picture_id)[WORD_INDEX[a, b]] ^ WORD_WHITENING[a, b]
    luma = np.where(ID_IN_LUMA[a, b], chroma, SYNC_BITS[a, b])
    return luma, chroma


def magic_errors(luma: np.ndarray, phase: tuple[int, int]) -> int:
    """How many of the "keypaint" bits that got votes the luma votes' per-bit sums get wrong (a crop of a
    small picture may hold no copy of a few: they count as neither right nor wrong)."""
    a, b = positions(*luma.shape, phase)
    sync = ~ID_IN_LUMA[a, b]
    unwhitened = luma * (1 - 2 * LUMA_WHITENING[a, b])  # > 0: a vote for "keypaint" bit 1
    sums = np.bincount(MAGIC_INDEX[a, b][sync], weights=unwhitened[sync], minlength=64)
    return int((((sums > 0) != MAGIC_BITS.astype(bool)) & (sums != 0)).sum())


def read_id(luma: np.ndarray, chroma: np.ndarray, phase: tuple[int, int]) -> str | None:
    """The id (8 hex digits) from the blocks' soft votes, or None when no word passes the check.

    Read from both channels, then from luma alone: a JPEG turns chroma's votes into noise that drowns
    luma's (JPEG q75 on 20 tiny-model 512 px pictures: the id read in 2 with both, in 20 from luma alone).
    """
    a, b = positions(*luma.shape, phase)
    unwhiten = 1 - 2 * WORD_WHITENING[a, b]  # > 0 after it: a vote for word bit 1
    luma_words = np.where(ID_IN_LUMA[a, b], luma, 0.0)
    for votes in ((chroma + luma_words) * unwhiten, luma_words * unwhiten):
        soft = np.bincount(WORD_INDEX[a, b].ravel(), weights=votes.ravel(), minlength=WORD_BITS)
        if np.all(soft != 0):  # else a bit with no vote at all: too small a crop
            found = _decode(soft)
            if found is not None:
                return found
    return None


def _decode(soft: np.ndarray) -> str | None:
    """The id if the signs, or a flip of their CHASE_BITS least certain bits, pass the check; else None."""
    least_certain = np.argsort(np.abs(soft))[:CHASE_BITS]
    for flips in range(2**CHASE_BITS):
        word = soft > 0
        for k, bit in enumerate(least_certain):
            word[bit] ^= bool(flips >> k & 1)
        value = int.from_bytes(np.packbits(word[:ID_BITS].astype(np.uint8)).tobytes(), "big")
        check = int.from_bytes(np.packbits(word[ID_BITS:].astype(np.uint8)).tobytes(), "big")
        if check == check_of(value):
            return f"{value:08x}"
    return None
