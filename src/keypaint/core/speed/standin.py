"""`StandIn`: a module that takes a diffusers model's place in a pipeline and answers for it.

Pipelines read `config`, `dtype`, `device` (and SDXL's `add_embedding`) off their U-Net and VAE; a
stand-in forwards those to the model it wraps, so a pipeline runs a faster (or caching) version without
knowing, and forward hooks (the live preview's `DenoisedTracker`) still see every call.
"""

from __future__ import annotations

from typing import Any

import torch


class StandIn(torch.nn.Module):
    """Wraps `inner` (a registered submodule); subclasses change how it is called."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    @property
    def config(self) -> Any:
        return self.inner.config

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    @property
    def device(self) -> torch.device:
        return self.inner.device

    def __getattr__(self, name: str) -> Any:
        """Anything else a pipeline reads off the model (SDXL: `add_embedding`) comes from the inner one."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner(*args, **kwargs)
