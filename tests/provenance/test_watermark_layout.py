"""What each block carries: the pattern's balance, the word's spread, and reading the id from soft votes."""

from __future__ import annotations

import numpy as np

from keypaint.provenance import watermark_layout as layout


def _votes(picture_id: str, rows: int, cols: int, phase: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Perfect +-1 votes of a rows x cols crop whose first block was the original's block `phase`."""
    luma, chroma = layout.block_bits(picture_id, phase[0] + rows, phase[1] + cols)
    crop = np.s_[phase[0] :, phase[1] :]
    return 2.0 * luma[crop] - 1, 2.0 * chroma[crop] - 1


def test_the_sync_pattern_is_balanced_and_carries_keypaint() -> None:
    signs = layout.SYNC_SIGNS[~layout.ID_IN_LUMA]
    assert signs.size == 48 * 48 * 3 // 4
    assert abs(signs.mean()) < 0.05  # whitened: as many +1 as -1, whatever "keypaint"'s bits
    unwhitened = layout.SYNC_BITS ^ layout.LUMA_WHITENING
    assert np.array_equal(unwhitened, layout.MAGIC_BITS[layout.MAGIC_INDEX])
    assert bytes(np.packbits(layout.MAGIC_BITS)) == b"keypaint"


def test_a_128_px_picture_holds_every_word_bit_several_times() -> None:
    a, b = layout.positions(16, 16)
    chroma = np.bincount(layout.WORD_INDEX[a, b].ravel(), minlength=layout.WORD_BITS)
    luma = np.bincount(layout.WORD_INDEX[a, b][layout.ID_IN_LUMA[a, b]], minlength=layout.WORD_BITS)
    assert chroma.min() >= 5 and chroma.max() <= 6
    assert luma.min() >= 1
    magic = np.bincount(layout.MAGIC_INDEX[a, b][~layout.ID_IN_LUMA[a, b]], minlength=64)
    assert magic.min() >= 2  # all 64 "keypaint" bits, at least twice


def test_the_id_reads_back_from_a_crop_at_its_phase() -> None:
    luma, chroma = _votes("c0ffee42", 12, 12, (2, 3))
    assert layout.read_id(luma, chroma, (2, 3)) == "c0ffee42"
    assert layout.magic_errors(luma, (2, 3)) == 0
    assert layout.read_id(luma, chroma, (2, 4)) is None  # the wrong phase reads a word that fails its check


def test_a_few_weak_wrong_bits_are_corrected_and_a_wrong_word_is_refused() -> None:
    luma, chroma = _votes("0badf00d", 16, 16, (0, 0))
    a, b = layout.positions(16, 16)
    weakened = chroma.copy()
    for bit in (3, 17, 40):  # three word bits whose chroma votes all lean the wrong way, weakly
        weakened[layout.WORD_INDEX[a, b] == bit] *= -0.01
    no_luma = np.zeros_like(luma)
    assert layout.read_id(no_luma, weakened, (0, 0)) == "0badf00d"
    strongly_wrong = chroma.copy()
    strongly_wrong[layout.WORD_INDEX[a, b] < 10] *= -1  # 10 bits confidently wrong: no retry reaches them
    assert layout.read_id(no_luma, strongly_wrong, (0, 0)) is None


def test_the_same_id_always_gives_the_same_blocks() -> None:
    first = layout.block_bits("12345678", 20, 30)
    again = layout.block_bits("12345678", 20, 30)
    other = layout.block_bits("12345679", 20, 30)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert np.array_equal(
        first[0][~layout.ID_IN_LUMA[layout.positions(20, 30)]],
        other[0][~layout.ID_IN_LUMA[layout.positions(20, 30)]],
    )  # the sync part: id-free
    assert not np.array_equal(first[1], other[1])


def test_the_id_reads_from_luma_alone_when_chroma_is_noise() -> None:
    """After a JPEG chroma votes are noise that can outweigh luma's; the id is then read from luma alone."""
    luma, _ = _votes("c0ffee42", 64, 64, (0, 0))
    noise = np.random.default_rng(0).choice([-1.0, 1.0], size=luma.shape)
    assert layout.read_id(luma, 3 * noise, (0, 0)) == "c0ffee42"
