"""A style classifier: is this picture drawn in the target style, or in one of the base model's styles?

The instrument of `keypaint eval style` (issue 18). It is trained on real pictures only: the target style's
pictures against every style in the base model's training data, on names disjoint from the ones evaluated,
so it judges the way a thing is drawn and not which thing it is. A small CNN (four stride-2 stages, global
average pooling, one logit) at 64 px, trained from scratch in about a minute on a CPU. Both classes are
shifted, zoomed and sometimes blurred (down- and up-sampled) while training, so that the softness of a
generated picture is not taken for a style. Every batch is drawn from a generator seeded by (seed, step).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from keypaint.errors import ModelError
from keypaint.scorer.model import arrays_to_pixels, image_to_array
from keypaint.scorer.train import augment_pixels

SIZE = 64


class StyleNet(nn.Module):
    """Conv-BN-ReLU stages 3 -> 24 -> 48 -> 96 -> 192 (each halves the side), pooled, one logit."""

    def __init__(self, widths: tuple[int, ...] = (24, 48, 96, 192)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for cout in widths:
            layers += [
                nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixels).mean((2, 3))).squeeze(1)


@dataclass
class StyleClassifier:
    """A trained StyleNet; `probability(images)` is each picture's chance of being in the target style."""

    net: StyleNet
    threshold: float = 0.5

    @torch.inference_mode()
    def probability(self, images: list[Image.Image], batch_size: int = 256) -> torch.Tensor:
        self.net.eval()
        starts = range(0, len(images), batch_size)
        out = [self.net(_pixels(images[i : i + batch_size])).sigmoid() for i in starts]
        return torch.cat(out) if out else torch.zeros(0)

    def in_style(self, images: list[Image.Image]) -> list[bool]:
        return [bool(p >= self.threshold) for p in self.probability(images)]

    def share(self, images: list[Image.Image]) -> float:
        """The share of `images` it assigns to the target style."""
        return sum(self.in_style(images)) / len(images) if images else 0.0

    def save(self, path: str | Path, about: dict | None = None) -> None:
        """fp32 safetensors; `about` (what it was trained on) goes into the header."""
        state = {k: v.detach().float().contiguous() for k, v in self.net.state_dict().items()}
        about = {"kind": "style-classifier", "threshold": self.threshold, **(about or {})}
        meta = {"keypaint": json.dumps(about)}
        save_file(state, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> StyleClassifier:
        try:
            state = load_file(str(path))
        except Exception as err:  # safetensors raises its own error types for a foreign file
            raise ModelError(f"{path}: not a style classifier ({err})") from err
        net = StyleNet()
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise ModelError(f"{path}: not a keypaint style classifier") from err
        return cls(net.eval())


def train_style_classifier(
    positives: list[Image.Image],
    negatives: list[Image.Image],
    *,
    steps: int = 400,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
) -> StyleClassifier:
    """Train on the target style's real pictures (`positives`) against the base's (`negatives`).

    Each batch is half positives, half negatives, whatever the sizes of the two sets, so a few hundred
    pictures of a new style stand against ten thousand of the base's.
    """
    if not positives or not negatives:
        raise ValueError("a style classifier needs pictures of the target style and of the base's styles")
    pos = torch.from_numpy(np.stack([image_to_array(im, SIZE) for im in positives]))
    neg = torch.from_numpy(np.stack([image_to_array(im, SIZE) for im in negatives]))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = StyleNet()
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    half = batch_size // 2
    target = torch.cat([torch.ones(half), torch.zeros(half)])
    net.train()
    for step in range(steps):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        batch = torch.cat([
            pos[torch.randint(len(pos), (half,), generator=gen)],
            neg[torch.randint(len(neg), (half,), generator=gen)],
        ])
        pixels = _soften(augment_pixels(arrays_to_pixels(batch), gen), gen)
        loss = F.binary_cross_entropy_with_logits(net(pixels), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return StyleClassifier(net.eval())


def _soften(pixels: torch.Tensor, generator: torch.Generator, prob: float = 0.5) -> torch.Tensor:
    """Blur a share of the pictures by sampling them down (to 24-48 px) and back up."""
    n, _, size, _ = pixels.shape
    picked = torch.rand(n, generator=generator) < prob
    low = int(torch.randint(24, 49, (1,), generator=generator))
    if not picked.any():
        return pixels
    out = pixels.clone()
    small = F.interpolate(
        pixels[picked], size=(low, low), mode="bilinear", antialias=True, align_corners=False
    )
    out[picked] = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    return out


def _pixels(images: list[Image.Image]) -> torch.Tensor:
    return arrays_to_pixels(torch.from_numpy(np.stack([image_to_array(im, SIZE) for im in images])))
