"""x_T without PyTorch must be PyTorch's own numbers for the same seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from keypaint.core.onnx_coldstart.noise import torch_randn


@pytest.mark.parametrize(
    ("seed", "shape"),
    [(0, (4, 16, 16)), (1, (4, 8, 8)), (7, (4, 17, 13)), (2**32 - 1, (4, 32, 32)), (123456, (16,)),
     (5, (4, 5, 5))],
)
def test_matches_torch_randn(seed: int, shape: tuple[int, ...]) -> None:
    expected = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32).numpy()
    got = torch_randn(seed, shape)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, expected, atol=5e-6, rtol=0)


def test_seeds_differ_and_repeat() -> None:
    a, b = torch_randn(3, (4, 8, 8)), torch_randn(4, (4, 8, 8))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, torch_randn(3, (4, 8, 8)))


def test_refuses_what_it_does_not_reproduce() -> None:
    with pytest.raises(ValueError, match="fewer than 16"):
        torch_randn(0, (3, 5))
    with pytest.raises(ValueError, match="32-bit"):
        torch_randn(2**32, (4, 8, 8))
