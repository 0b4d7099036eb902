"""DeepCache (Ma et al. 2023, "DeepCache: Accelerating Diffusion Models for Free"): an approximate speed-up.

The U-Net's deep blocks change slowly from one denoising step to the next. Every `interval`-th call runs
the whole U-Net and keeps the deep blocks' outputs; the calls in between run only the shallow path
(conv_in, the first down block, the last up block, conv_out) and reuse the kept deep features through the
skip connection. The picture changes (the bench reports PSNR against the exact one), so it is opt-in.

The deep blocks of the wrapped U-Net are replaced by pass-through `_Reused` wrappers (its ModuleLists are
rewired in place; `remove()` puts the blocks back); they reuse only while `DeepCacheUNet` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from keypaint.core.speed.standin import StandIn


@dataclass
class _Schedule:
    interval: int
    calls: int = 0
    reuse: bool = False
    shape: tuple[int, ...] | None = None


class _Reused(torch.nn.Module):
    """A deep block that returns its last output instead of computing while the schedule says reuse."""

    def __init__(self, block: torch.nn.Module, schedule: _Schedule) -> None:
        super().__init__()
        self.block = block
        self.schedule = schedule
        self.kept: Any = None

    # UNet2DConditionModel.forward reads these off its blocks to decide how to call them.
    @property
    def has_cross_attention(self) -> bool:
        return bool(getattr(self.block, "has_cross_attention", False))

    @property
    def resnets(self) -> torch.nn.ModuleList:
        return self.block.resnets

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.schedule.reuse and self.kept is not None:
            return self.kept
        self.kept = self.block(*args, **kwargs)
        return self.kept


class DeepCacheUNet(StandIn):
    """Stands in for a `UNet2DConditionModel`; runs its deep blocks only every `interval`-th call."""

    def __init__(self, unet: torch.nn.Module, interval: int) -> None:
        super().__init__(unet)
        if len(unet.down_blocks) < 2 or len(unet.up_blocks) < 2:
            raise ValueError("DeepCache needs a U-Net with at least two resolution levels")
        self.schedule = _Schedule(interval)
        self._wrapped: list[tuple[torch.nn.ModuleList | None, int, torch.nn.Module]] = []
        for i in range(1, len(unet.down_blocks)):
            self._wrap(unet.down_blocks, i)
        for i in range(len(unet.up_blocks) - 1):
            self._wrap(unet.up_blocks, i)
        if unet.mid_block is not None:
            self._wrapped.append((None, 0, unet.mid_block))
            unet.mid_block = _Reused(unet.mid_block, self.schedule)

    def _wrap(self, blocks: torch.nn.ModuleList, index: int) -> None:
        self._wrapped.append((blocks, index, blocks[index]))
        blocks[index] = _Reused(blocks[index], self.schedule)

    def reset(self) -> None:
        """Start a new run: the next call computes every block."""
        self.schedule.calls = 0
        self.schedule.shape = None

    def remove(self) -> torch.nn.Module:
        """Put the original blocks back and return the plain U-Net."""
        for blocks, index, block in self._wrapped:
            if blocks is None:
                self.inner.mid_block = block
            else:
                blocks[index] = block
        self._wrapped.clear()
        return self.inner

    def forward(self, sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        schedule = self.schedule
        shape = tuple(sample.shape)
        schedule.reuse = schedule.shape == shape and schedule.calls % schedule.interval != 0
        schedule.shape = shape
        schedule.calls += 1
        try:
            return self.inner(sample, *args, **kwargs)
        finally:
            schedule.reuse = False  # direct calls of the U-Net always compute everything
