"""Token merging (Bolya and Hoffman 2023, "Token Merging for Fast Stable Diffusion"): an approximate speed-up.

Self-attention in the U-Net's highest-resolution transformer blocks runs over every latent pixel (4,096
tokens at 512 px) and its cost grows with the square of that count. ToMe for SD merges a share (`ratio`) of
those tokens before self-attention and copies the results back afterwards:

1. destinations: in every 2x2 cell of the token grid one token is a destination, the other three sources;
2. bipartite soft matching: each source finds its most similar destination (cosine similarity of the
   hidden states); the `ratio x tokens` sources with the closest matches are averaged into their
   destinations, the rest stay as they are;
3. self-attention runs over the shorter sequence; "unmerge" gives each merged source its destination's
   result, so the block's output has every token again.

tomesd does this by swapping the classes of diffusers' transformer blocks at run time; here it is an
attention processor (diffusers' `set_attn_processor`) wrapping the self-attention layers (`attn1`) of the
U-Net's highest-resolution attention level (SD 1.x: the latent's full resolution; SDXL: half of it, where
tomesd needs `max_downsample=2`), merging before self-attention only, as tomesd does by default. Which
token of a cell is the destination is drawn once per grid size from a fixed seed, so a seed still means
one picture. The U-Net's input size comes from a forward pre-hook, which is how a processor knows the
token grid's shape. The picture changes (the bench reports PSNR against the exact one): opt-in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from keypaint.core.speed.options import MAX_MERGING

_SEED = 0x70E  # fixed: the destinations of a grid are the same in every run and process


@dataclass
class _Grid:
    """The latent size of the current U-Net call, and destination/source indices per token grid."""

    latent: tuple[int, int] = (0, 0)
    indices: dict[tuple[int, int, str], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def split(self, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(sources, destinations): token positions of an h x w grid, one destination per 2x2 cell."""
        key = (h, w, str(device))
        if key not in self.indices:
            generator = torch.Generator().manual_seed(_SEED)
            cells_h, cells_w = h // 2, w // 2
            choice = torch.randint(4, (cells_h, cells_w), generator=generator)
            is_dst = torch.zeros(h, w, dtype=torch.bool)
            rows = torch.arange(cells_h)[:, None] * 2 + choice // 2
            cols = torch.arange(cells_w)[None, :] * 2 + choice % 2
            is_dst[rows, cols] = True  # rows/columns past the last whole cell stay sources
            flat = is_dst.flatten()
            positions = torch.arange(h * w)
            self.indices[key] = (positions[~flat].to(device), positions[flat].to(device))
        return self.indices[key]


def merge_plan(x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, r: int) -> tuple[Any, Any]:
    """Bipartite soft matching of `x` (batch, tokens, channels): merge and unmerge functions for r tokens."""
    batch, tokens, _ = x.shape
    metric = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    scores = metric[:, src] @ metric[:, dst].transpose(-1, -2)  # (batch, sources, destinations)
    best, best_dst = scores.max(dim=-1)
    order = best.argsort(dim=-1, descending=True, stable=True)
    kept, merged = order[:, r:], order[:, :r]  # sources that stay, sources merged into a destination
    into = best_dst.gather(1, merged)  # the destination each merged source joins
    kept_pos, merged_pos = src[kept], src[merged]  # their positions in the full sequence

    def along(index: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return index[..., None].expand(-1, -1, h.shape[-1])

    # how many tokens each destination averages (itself and the sources joining it)
    counts = torch.ones(batch, len(dst), device=x.device, dtype=x.dtype).scatter_add(
        1, into, torch.ones(into.shape, device=x.device, dtype=x.dtype)
    )

    def merge(h: torch.Tensor) -> torch.Tensor:
        joins = h.gather(1, along(merged_pos, h))
        # a sum and a division: scatter_reduce's "mean" runs 7x slower on fp16 CUDA tensors (H100)
        targets = h[:, dst].scatter_add(1, along(into, h), joins) / counts[..., None]
        return torch.cat([h.gather(1, along(kept_pos, h)), targets], dim=1)

    def unmerge(h: torch.Tensor) -> torch.Tensor:
        stays, targets = h[:, : kept.shape[1]], h[:, kept.shape[1] :]
        out = h.new_empty(batch, tokens, h.shape[-1])
        out[:, dst] = targets
        out.scatter_(1, along(kept_pos, h), stays)
        out.scatter_(1, along(merged_pos, h), targets.gather(1, along(into, h)))
        return out

    return merge, unmerge


class TokenMergingProcessor:
    """Wraps a self-attention layer's processor: merge before it, unmerge after it."""

    def __init__(self, inner: Any, grid: _Grid, ratio: float, max_downsample: int) -> None:
        self.inner = inner
        self.grid = grid
        self.ratio = ratio
        self.max_downsample = max_downsample

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        def inner(states: torch.Tensor) -> torch.Tensor:
            return self.inner(attn, states, encoder_hidden_states, attention_mask, *args, **kwargs)

        h, w = self.grid.latent
        if hidden_states.dim() != 3 or encoder_hidden_states is not None or h * w == 0:
            return inner(hidden_states)
        tokens = hidden_states.shape[1]
        downsample = max(1, round(math.sqrt(h * w / tokens)))
        gh, gw = math.ceil(h / downsample), math.ceil(w / downsample)
        if downsample > self.max_downsample or gh * gw != tokens or gh < 2 or gw < 2:
            return inner(hidden_states)
        src, dst = self.grid.split(gh, gw, hidden_states.device)
        r = min(int(tokens * self.ratio), len(src))
        if r == 0:
            return inner(hidden_states)
        merge, unmerge = merge_plan(hidden_states, src, dst, r)
        return unmerge(inner(merge(hidden_states)))


class TokenMerging:
    """ToMe on a U-Net's self-attention layers, in place; `remove()` restores the processors it found."""

    def __init__(self, unet: torch.nn.Module, ratio: float, max_downsample: int | None = None) -> None:
        if not 0 < ratio <= MAX_MERGING:
            raise ValueError(f"token merging ratio must be within (0, {MAX_MERGING}], got {ratio}")
        self.unet = unet
        self.ratio = ratio
        if max_downsample is None:  # the U-Net's highest-resolution attention level (SD 1.x: 1, SDXL: 2)
            kinds = list(unet.config.down_block_types)
            first = next((i for i, kind in enumerate(kinds) if "CrossAttn" in kind), 0)
            max_downsample = 2**first
        self.max_downsample = max_downsample
        self.grid = _Grid()
        self.original: dict[str, Any] = dict(unet.attn_processors)
        processors = {
            name: TokenMergingProcessor(p, self.grid, ratio, max_downsample)
            if name.endswith("attn1.processor")
            else p
            for name, p in self.original.items()
        }
        unet.set_attn_processor(processors)
        self._hook = unet.register_forward_pre_hook(self._see_input, with_kwargs=True)

    def _see_input(self, _module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        sample = args[0] if args else kwargs["sample"]
        self.grid.latent = (int(sample.shape[-2]), int(sample.shape[-1]))

    def remove(self) -> None:
        self._hook.remove()
        self.unet.set_attn_processor(self.original)
