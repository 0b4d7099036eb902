"""Where compiled artefacts live, and the keys that tell when one still fits the weights it was made from.

Exported ONNX graphs and torch.compile caches are keyed by the weights' fingerprint, the input shapes and
the library versions, so a later process reuses them and a changed model (or library) never does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def default_cache_dir(home: Path | None = None) -> Path:
    """`<KEYPAINT_HOME>/cache/speed`, beside the other caches of keypaint's data folder."""
    from keypaint.models.registry import keypaint_home

    return (home or keypaint_home()) / "cache" / "speed"


def weights_fingerprint(module: torch.nn.Module) -> str:
    """A content fingerprint of what `module` computes: names, shapes, dtypes and per-tensor sums.

    Cheap enough to check before every run (about 10 ms for the built-in U-Net), so weights changed in
    place (a fused LoRA) are noticed; two sums (plain and of squares) make an accidental match unlikely.
    Unfused LoRA layers (peft) count only with the adapters that are on, and their scales: a module whose
    LoRAs are all off has the fingerprint it had before any was loaded.
    """
    import torch

    h = hashlib.sha256()
    sums: list[torch.Tensor] = []
    tensors = [*module.named_parameters(), *module.named_buffers()]
    lora_parts = {name: tensor for name, tensor in tensors if ".lora_" in name}
    with torch.no_grad():
        for name, tensor in _active_lora_tensors(module, lora_parts, h) + [
            (name, tensor) for name, tensor in tensors if name not in lora_parts
        ]:
            plain_name = name.replace(".base_layer.", ".")  # peft's wrapper renames the weights it wraps
            h.update(f"{plain_name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            if tensor.is_floating_point() and tensor.numel():
                f32 = torch.float32
                sums += [tensor.sum(dtype=f32), torch.linalg.vector_norm(tensor, dtype=f32)]
    if sums:
        h.update(torch.stack(sums).cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _active_lora_tensors(
    module: torch.nn.Module, lora_parts: dict[str, torch.Tensor], h: Any
) -> list[tuple[str, torch.Tensor]]:
    """The LoRA tensors of the adapters that are on, each layer's scales hashed into `h`."""
    if not lora_parts:
        return []
    chosen = []
    for name, layer in module.named_modules():
        scaling = getattr(layer, "scaling", None)
        if not isinstance(scaling, dict) or getattr(layer, "disable_adapters", False):
            continue
        for adapter in getattr(layer, "active_adapters", []):
            if adapter in scaling:
                h.update(f"{name}:{adapter}:{scaling[adapter]}".encode())
                prefix = f"{name}." if name else ""
                chosen += [
                    (k, v) for k, v in lora_parts.items()
                    if k.startswith(prefix) and k.endswith(f".{adapter}.weight")
                ]
    return chosen


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
