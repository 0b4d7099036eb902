"""The GPU fast path: channels_last, fused QKV projections, torch.compile with CUDA graphs, cached on disk.

A plain diffusers step on a fast GPU spends most of its time launching about a thousand small kernels from
Python. Compiling the U-Net (Inductor's fused Triton kernels) and replaying each step as one CUDA graph
removes most of that; channels_last lets convolutions use the tensor-core layout without transposes, and one
QKV matmul replaces three. The numbers stay fp16 with other kernel choices, so pixels differ by rounding
only (the bench states the largest difference). Compiling takes a minute; its artefacts are saved with
`torch.compiler.save_cache_artifacts` under the cache folder and loaded by later processes before they
compile, which then mostly re-trace instead of re-generating and re-tuning kernels.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from keypaint.core.speed.artefacts import artefact_key
from keypaint.core.speed.standin import StandIn

# Inductor options, passed per compile (no global config): CUDA graphs for the per-step U-Net; 1x1
# convolutions as matmuls (SD's attention projections and skip convs); no autotuning sweep (minutes).
UNET_OPTIONS: dict[str, Any] = {"triton.cudagraphs": True, "conv_1x1_as_mm": True}
VAE_OPTIONS: dict[str, Any] = {"conv_1x1_as_mm": True}  # one decode per picture: launches do not matter


class CompiledUNet(StandIn):
    """The compiled U-Net; its output is copied out of the CUDA graph's memory before the next replay."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.inner(*args, **kwargs)
        if isinstance(out, tuple):
            return tuple(o.clone() if isinstance(o, torch.Tensor) else o for o in out)
        out.sample = out.sample.clone()
        return out


class CompileCache:
    """One file of torch.compile artefacts per model architecture, dtype, GPU and torch version."""

    def __init__(self, cache_dir: Path, unet: torch.nn.Module, vae: torch.nn.Module) -> None:
        device = unet.device
        gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
        architecture = json.dumps([dict(unet.config), dict(vae.config)], sort_keys=True, default=str)
        key = artefact_key("compile", architecture, unet.dtype, gpu, torch.__version__, UNET_OPTIONS)
        self.path = cache_dir / f"compiled-{key}.bin"
        self.loaded = False
        self.saved_shapes: set[tuple] = set()

    def load(self) -> bool:
        """Hand saved artefacts to torch's caches (before compiling); False when there are none yet."""
        if self.path.is_file():
            torch.compiler.load_cache_artifacts(self.path.read_bytes())
            self.loaded = True
        return self.loaded

    def save(self, shape: tuple) -> None:
        """After the first run of a new input shape: write every artefact this process compiled so far."""
        if shape in self.saved_shapes:
            return
        self.saved_shapes.add(shape)
        artefacts = torch.compiler.save_cache_artifacts()
        if artefacts is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{time.time_ns()}.tmp")
        tmp.write_bytes(artefacts[0])
        tmp.replace(self.path)


def compile_pipeline_parts(
    unet: torch.nn.Module, vae: torch.nn.Module, compiler: str = "inductor"
) -> CompiledUNet:
    """Rewrite `unet` and `vae` in place for speed (same weights) and return the U-Net's stand-in.

    `compiler` "eager" only traces the graphs (seconds, no code generation): tests check the path with it.
    """
    unet.fuse_qkv_projections()
    vae.fuse_qkv_projections()
    unet.to(memory_format=torch.channels_last)
    vae.to(memory_format=torch.channels_last)
    if compiler == "inductor":
        unet.compile(fullgraph=True, options=UNET_OPTIONS)
        vae.decoder.compile(fullgraph=True, options=VAE_OPTIONS)
    else:
        unet.compile(fullgraph=True, backend=compiler)
        vae.decoder.compile(fullgraph=True, backend=compiler)
    return CompiledUNet(unet)
