"""x_T without PyTorch: `torch.randn` of a CPU generator, reproduced with numpy.

keypaint draws each picture's starting noise on the CPU from `torch.Generator("cpu").manual_seed(seed)`,
so a seed means the same picture everywhere. The frozen path must start from the same numbers without
importing PyTorch. PyTorch's CPU generator is a 32-bit Mersenne Twister seeded with `init_genrand(seed)`,
which is exactly numpy's legacy `RandomState(seed)`; a float uniform keeps the low 24 bits of one draw,
and `randn` of 16 or more values fills the tensor with uniforms, then turns each block of 16 into normals
with Box-Muller (u1 = 1 - first eight, u2 = last eight, `normal_fill_16` in ATen's
`DistributionTemplates.h`); when the length is not a multiple of 16, the last 16 values are redone from 16
fresh uniforms. PyTorch evaluates log/cos/sin in float32 vector code, so values agree to about 1e-6.
"""

from __future__ import annotations

import numpy as np

_MASK24 = (1 << 24) - 1


def _uniforms(state: np.random.RandomState, count: int) -> np.ndarray:
    draws = state.randint(0, 2**32, size=count, dtype=np.uint32)
    return (draws & _MASK24).astype(np.float64) * 2.0**-24


def _box_muller(blocks: np.ndarray) -> np.ndarray:
    """Rows of 16 uniforms -> rows of 16 normals, as PyTorch pairs them (i with i + 8)."""
    radius = np.sqrt(-2.0 * np.log(1.0 - blocks[:, :8]))
    theta = 2.0 * np.pi * blocks[:, 8:]
    return np.concatenate([radius * np.cos(theta), radius * np.sin(theta)], axis=1)


def torch_randn(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """float32 values equal (to ~1e-6) to `torch.randn(shape, generator=Generator().manual_seed(seed))`."""
    count = int(np.prod(shape))
    if count < 16:
        raise ValueError("fewer than 16 values are drawn one by one in PyTorch; not reproduced here")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed {seed} is outside the 32-bit range this reproduction covers")
    state = np.random.RandomState(seed)
    values = _uniforms(state, count)
    full = count // 16 * 16
    values[:full] = _box_muller(values[:full].reshape(-1, 16)).reshape(-1)
    if full != count:
        values[count - 16 :] = _box_muller(_uniforms(state, 16).reshape(1, 16)).reshape(-1)
    return values.astype(np.float32).reshape(shape)
