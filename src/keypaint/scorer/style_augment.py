"""Style augmentations: what makes the scorer see a thing through the way it is drawn.

A scorer trained on ten colour emoji styles ranks a black-and-white drawing of a cat far below a colour one,
so it cannot judge content in a style it never saw (issue 18's content measure). During training, a share of
the pictures is redrawn in one of five ways that keep the subject and change the style: greyscale, ink (a soft
black-on-white threshold, like monochrome emoji), an edge map (dark outlines on white, like line icons),
colour inversion, and colour jitter (hue rotation and saturation). Each picture's transform and its settings
come from the batch's generator, so a batch stays a pure function of (seed, step).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KINDS = ("grey", "ink", "edges", "invert", "jitter")
_LUMA = (0.299, 0.587, 0.114)
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def luminance(pixels: torch.Tensor) -> torch.Tensor:
    """(N, 1, S, S) luma of (N, 3, S, S) pixels in [-1, 1]."""
    weights = torch.tensor(_LUMA, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
    return (pixels * weights).sum(1, keepdim=True)


def greyscale(pixels: torch.Tensor) -> torch.Tensor:
    return luminance(pixels).expand_as(pixels).contiguous()


def ink(pixels: torch.Tensor, threshold: torch.Tensor, sharpness: float = 8.0) -> torch.Tensor:
    """Black ink where the picture is darker than `threshold` (per picture, in [-1, 1]), white elsewhere."""
    y = torch.tanh((luminance(pixels) - threshold.view(-1, 1, 1, 1)) * sharpness)
    return y.expand_as(pixels).contiguous()


def edges(pixels: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """Dark outlines on white: Sobel magnitude of the luma, scaled by `gain` (per picture)."""
    kernel_x = torch.tensor(_SOBEL_X, device=pixels.device, dtype=pixels.dtype).view(1, 1, 3, 3)
    kernel = torch.cat([kernel_x, kernel_x.transpose(2, 3)])
    y = F.conv2d(F.pad(luminance(pixels), (1, 1, 1, 1), mode="replicate"), kernel)
    magnitude = y.pow(2).sum(1, keepdim=True).sqrt()
    line = (magnitude * gain.view(-1, 1, 1, 1)).clamp(0.0, 1.0)
    return (1.0 - 2.0 * line).expand_as(pixels).contiguous()


def jitter(pixels: torch.Tensor, hue: torch.Tensor, saturation: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by `hue` radians about the grey axis and scale the saturation (per picture)."""
    grey = luminance(pixels)
    chroma = pixels - grey
    axis = torch.ones(3, device=pixels.device, dtype=pixels.dtype) / math.sqrt(3.0)
    cos, sin = hue.cos().view(-1, 1, 1, 1), hue.sin().view(-1, 1, 1, 1)
    cross = torch.linalg.cross(axis.view(1, 3, 1, 1).expand_as(chroma), chroma, dim=1)
    along = (chroma * axis.view(1, 3, 1, 1)).sum(1, keepdim=True) * axis.view(1, 3, 1, 1)
    rotated = chroma * cos + cross * sin + along * (1 - cos)  # Rodrigues' rotation
    return (grey + rotated * saturation.view(-1, 1, 1, 1)).clamp(-1.0, 1.0)


def style_augment(pixels: torch.Tensor, generator: torch.Generator, prob: float) -> torch.Tensor:
    """Redraw each picture with probability `prob` in one of KINDS, chosen evenly; the rest unchanged."""
    n = pixels.shape[0]
    if prob <= 0 or n == 0:
        return pixels
    picked = torch.rand(n, generator=generator) < prob
    kind = torch.randint(0, len(KINDS), (n,), generator=generator)
    threshold = torch.empty(n).uniform_(0.3, 0.8, generator=generator)
    gain = torch.empty(n).uniform_(0.8, 2.0, generator=generator)
    hue = torch.empty(n).uniform_(-math.pi, math.pi, generator=generator)
    saturation = torch.empty(n).uniform_(0.3, 1.5, generator=generator)
    device = pixels.device
    variants = {
        "grey": lambda x, i: greyscale(x),
        "ink": lambda x, i: ink(x, threshold[i].to(device, x.dtype)),
        "edges": lambda x, i: edges(x, gain[i].to(device, x.dtype)),
        "invert": lambda x, i: -x,
        "jitter": lambda x, i: jitter(x, hue[i].to(device, x.dtype), saturation[i].to(device, x.dtype)),
    }
    out = pixels.clone()
    for k, name in enumerate(KINDS):
        index = torch.nonzero(picked & (kind == k)).flatten()
        if len(index):
            out[index.to(device)] = variants[name](pixels[index.to(device)], index)
    return out
