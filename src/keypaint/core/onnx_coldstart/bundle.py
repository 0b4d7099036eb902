"""The frozen bundle: what the built-in model needs to paint on a CPU without PyTorch, kept on disk.

A run on the CPU fast path (`--fast`: the U-Net and VAE decoder as ONNX Runtime graphs) also writes, once,
what a later process needs to paint the same pictures from those graphs alone: the text encoder as an
ONNX graph, its tokenizer, and for each sampler and step count its linear plan (`plan`). The manifest
names the graphs exported for each input shape. It lives in the speed cache, in a folder named by a
digest of the model's files, so changed weights never meet an old bundle.

    <cache>/frozen-<digest>/bundle.json, text-encoder/model.onnx, tokenizer.json
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keypaint.core.onnx_coldstart.plan import SamplerPlan, plan_key

FORMAT = "keypaint-frozen/1"
MANIFEST = "bundle.json"


def model_digest(weights: Path, text_encoder: Path) -> str:
    """A digest of the files a built-in model paints with: U-Net, VAE and schedule bytes, text encoder stamp.

    The weights are hashed (about 40 MB, tens of milliseconds); the installed text encoder, which only a
    package upgrade changes, by its size and modification time.
    """
    h = hashlib.sha256()
    for part in ("unet", "vae", "scheduler"):
        for path in sorted((weights / part).glob("*")):
            if path.is_file():
                h.update(f"{part}/{path.name}".encode())
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        h.update(block)
    stat = (text_encoder / "model.safetensors").stat()
    h.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def shape_key(*shapes: tuple[int, ...]) -> str:
    return "|".join("x".join(str(n) for n in shape) for shape in shapes)


@dataclass
class Manifest:
    """bundle.json: the model it belongs to and where each graph and plan is."""

    model: str  # the model's name ("keypaint-emoji")
    sha256: str  # its U-Net hash, as the full path records it
    native_size: int  # pixels
    latent_channels: int
    vae_scale: int  # pixels per latent cell
    scaling_factor: float  # the VAE's latent scaling
    window: int  # tokens per text-encoder chunk, specials included
    pad_token: int
    unet: dict[str, str] = field(default_factory=dict)  # shape_key(sample, context) -> graph file
    vae: dict[str, str] = field(default_factory=dict)  # shape_key(latents) -> graph file
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)  # plan_key -> SamplerPlan.to_json()

    def plan(self, sampler: str, steps: int) -> SamplerPlan | None:
        data = self.plans.get(plan_key(sampler, steps))
        return None if data is None else SamplerPlan.from_json(data)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.__dict__}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} manifest")
        fields = {k: v for k, v in data.items() if k != "format"}
        return cls(**fields)


def bundle_dir(cache_dir: Path, digest: str) -> Path:
    return cache_dir / f"frozen-{digest}"


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest in `folder`; None when there is none or it cannot be read (the full path rewrites it)."""
    try:
        return Manifest.from_json(json.loads((folder / MANIFEST).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Replace bundle.json atomically (a reader sees the old one or the new one, never half of one)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".bundle-", suffix=".json", dir=folder)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(manifest.to_json(), out)
    os.replace(tmp, folder / MANIFEST)
