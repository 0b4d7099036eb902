"""Sizes against the model's native size: warnings, and A1111's default size painted native and upscaled."""

from __future__ import annotations

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.core.sizes import paints_native_for_a1111, size_warning, upscaled
from keypaint.outputs.results import infotext_for


def test_sizes_near_the_native_one_pass_and_far_ones_warn() -> None:
    assert size_warning(128, 128, 128) is None and size_warning(512, 768, 512) is None
    assert size_warning(64, 128, 128) is None  # half is still near
    assert "512x512 is far from the 128x128" in (size_warning(512, 512, 128) or "")
    assert size_warning(1024, 1024, 512) is not None and size_warning(248, 512, 512) is not None
    assert paints_native_for_a1111(512, 512, 128) and not paints_native_for_a1111(512, 512, 512)
    assert not paints_native_for_a1111(512, 768, 128) and not paints_native_for_a1111(512, 512, 1024)


def test_no_size_paints_native_and_upscaling_is_recorded(tiny_sd1) -> None:
    painter = Painter(tiny_sd1)
    [result] = painter.generate(GenerationParams(prompt="cat", steps=2, seed=1))
    assert result.image.size == (painter.native_size,) * 2
    big = upscaled(result, 512, 512)
    assert big.image.size == (512, 512) and result.image.size == (painter.native_size,) * 2
    text = infotext_for(big)
    assert f"Size: {painter.native_size}x{painter.native_size}" in text
    assert "Upscaled to: 512x512, Upscaler: Lanczos" in text
