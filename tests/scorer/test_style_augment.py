"""Style augmentations: each keeps the picture's shape and range, and they are a function of the generator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from keypaint.errors import KeypaintError
from keypaint.scorer.model import Scorer
from keypaint.scorer.style_augment import edges, greyscale, ink, jitter, style_augment
from keypaint.scorer.train import train_scorer


def _red_square() -> torch.Tensor:
    """One 16 px picture in [-1, 1]: white, with a red square in the middle."""
    pixels = torch.ones(1, 3, 16, 16)
    pixels[:, 1:, 4:12, 4:12] = -1.0  # green and blue off: red
    return pixels


def test_greyscale_and_ink_are_colourless() -> None:
    grey = greyscale(_red_square())
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    inked = ink(_red_square(), torch.tensor([0.5]))
    assert inked[0, 0, 8, 8] < -0.9  # the red square is darker than the threshold: ink
    assert inked[0, 0, 0, 0] > 0.9  # the white page stays white


def test_edges_draw_the_outline_only() -> None:
    lines = edges(_red_square(), torch.tensor([2.0]))
    assert lines[0, 0, 0, 0] == pytest.approx(1.0)  # flat page: white
    assert lines[0, 0, 8, 8] == pytest.approx(1.0)  # flat inside of the square: white
    assert lines[0, 0, 8, 4] < 0.0  # its border: a dark line


def test_jitter_keeps_luma_and_a_full_turn_is_identity() -> None:
    square = _red_square()
    turned = jitter(square, torch.tensor([2 * torch.pi]), torch.tensor([1.0]))
    assert torch.allclose(turned, square, atol=1e-5)
    shifted = jitter(square, torch.tensor([2.0]), torch.tensor([1.0]))
    assert not torch.allclose(shifted, square, atol=0.1)  # the hue moved


def test_style_augment_is_a_function_of_the_generator() -> None:
    batch = _red_square().repeat(32, 1, 1, 1)
    first = style_augment(batch, torch.Generator().manual_seed(1), 0.5)
    again = style_augment(batch, torch.Generator().manual_seed(1), 0.5)
    assert torch.equal(first, again)
    changed = (first - batch).abs().flatten(1).amax(1) > 1e-4
    assert 4 <= int(changed.sum()) <= 28  # about half redrawn
    assert first.shape == batch.shape and first.min() >= -1.0 - 1e-5 and first.max() <= 1.0 + 1e-5
    assert torch.equal(style_augment(batch, torch.Generator().manual_seed(1), 0.0), batch)


def test_a_scorer_fine_tune_starts_from_the_given_weights(
    trained: Path, squares: Path, tmp_path: Path, one_thread: None
) -> None:
    out = tmp_path / "v2"
    train_scorer(squares, out, steps=2, batch_size=8, lr=1e-9, warmup_steps=1, init=trained,
                 style_augment=1.0, device="cpu", progress=False, checkpoint_every=2)
    before, after = load_file(str(trained / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys()
    weights = [k for k in before if "running_" not in k]  # batch-norm statistics move without any lr
    assert all(torch.allclose(before[k].float(), after[k].float(), atol=1e-3) for k in weights)
    assert Scorer.load(out).config == Scorer.load(trained).config
    with pytest.raises(KeypaintError, match="style-augment"):
        train_scorer(squares, tmp_path / "bad", steps=1, style_augment=1.5, device="cpu", progress=False)
