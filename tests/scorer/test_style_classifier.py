"""The style classifier: learns outline-vs-flat from real pictures, saves, loads, refuses foreign files."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from keypaint.data.folder import load_folder
from keypaint.errors import ModelError
from keypaint.scorer.style_classifier import StyleClassifier, train_style_classifier


def _pictures(folder: Path, style: str) -> list[Image.Image]:
    return [Image.open(r.path).convert("RGB") for r in load_folder(folder) if r.fields["style"] == style]


@pytest.fixture(scope="module")
def outline_classifier(squares: Path) -> StyleClassifier:
    """Outline squares (the target style) against flat ones (the base's), 60 steps on one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_style_classifier(
            _pictures(squares, "outline"), _pictures(squares, "flat"), steps=60, batch_size=32, seed=0
        )
    finally:
        torch.set_num_threads(threads)


def test_it_tells_the_target_style_from_the_base_on_unseen_pictures(
    outline_classifier: StyleClassifier, squares_heldout: Path
) -> None:
    assert outline_classifier.share(_pictures(squares_heldout, "outline")) >= 0.9
    assert outline_classifier.share(_pictures(squares_heldout, "flat")) <= 0.1


def test_saved_and_loaded_it_judges_the_same(
    outline_classifier: StyleClassifier, squares_heldout: Path, tmp_path: Path
) -> None:
    path = tmp_path / "style.safetensors"
    outline_classifier.save(path, {"real": "squares"})
    pictures = _pictures(squares_heldout, "outline") + _pictures(squares_heldout, "flat")
    again = StyleClassifier.load(path)
    assert again.probability(pictures).tolist() == pytest.approx(
        outline_classifier.probability(pictures).tolist(), abs=1e-6
    )


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="not a style classifier"):
        StyleClassifier.load(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelError, match="not a keypaint style classifier"):
        StyleClassifier.load(tmp_path / "other.safetensors")


def test_it_needs_both_sides() -> None:
    with pytest.raises(ValueError, match="needs pictures"):
        train_style_classifier([], [Image.new("RGB", (8, 8))])
