"""Where compiled artefacts live, and the keys that tell when one still fits the weights it was made from.

Exported ONNX graphs and torch.compile caches are keyed by the weights' fingerprint, the input shapes and
the library versions, so a later process reuses them and a changed model (or library) never does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def default_cache_dir(home: Path | None = None) -> Path:
    """`<KEYPAINT_HOME>/cache/speed`, beside the other caches of keypaint's data folder."""
    from keypaint.models.registry import keypaint_home

    return (home or keypaint_home()) / "cache" / "speed"


def weights_fingerprint(module: torch.nn.Module) -> str:
    """A content fingerprint of `module`'s weights: names, shapes, dtypes and per-tensor sums.

    Cheap enough to check before every run (about 10 ms for the built-in U-Net), so weights changed in
    place (a fused LoRA) are noticed; two sums (plain and of squares) make an accidental match unlikely.
    """
    import torch

    h = hashlib.sha256()
    sums: list[torch.Tensor] = []
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            h.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            if tensor.is_floating_point() and tensor.numel():
                f32 = torch.float32
                sums += [tensor.sum(dtype=f32), torch.linalg.vector_norm(tensor, dtype=f32)]
    if sums:
        h.update(torch.stack(sums).cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def artefact_key(*parts: object) -> str:
    """A short stable name for the artefact of `parts` (fingerprint, shapes, versions ...)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:20]


def publish(tmp: Path, final: Path) -> Path:
    """Move a finished artefact folder into place atomically; a concurrent writer's copy wins."""
    try:
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process published the same key first
    return final
