"""Compact weights: int8 with a scale per block of 32 weights of an output channel, expanded on load.

The built-in model lives in the repository, so its bytes are a budget (the tracked tree and a GPU run's
data share 64 MiB). Each weight matrix or convolution kernel W (out, ...) is flattened per output channel
o into blocks b of 32 inputs and stored as

    q = round(W / s),  s = max|W[o, b]| / 127   (symmetric int8 per block, fp16 scales: 1.06 bytes a weight)

and read back as W ~= q * s. One scale per whole output channel (0.1% smaller) changed some pictures
visibly (PSNR 9.5 dB at worst of 24); blocks of 32 are what GGUF's Q8_0 found near lossless. Biases, norms
and other small tensors stay fp16: a few percent of the bytes and the most sensitive to rounding.
docs/model-card.md gives the measured picture difference against the fp16 weights (PSNR) and the scorer's
fidelity.

The file is a plain safetensors file (`keypaint-compact.safetensors`) whose header says
`format: keypaint-compact/1`; each quantised tensor NAME has a companion `NAME::scale`, (out, inputs / 32).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from keypaint.errors import ModelError

if TYPE_CHECKING:
    import torch

FORMAT = "keypaint-compact/1"
FILENAME = "keypaint-compact.safetensors"
SCALE = "::scale"
MIN_ELEMENTS = 1024  # smaller tensors (biases, norms, tiny kernels) stay fp16
SOURCE_KEY = "source_sha256"  # header field: the hash of the plain files a compact file was made from
BLOCK = 32  # weights per scale, along each output channel's flattened inputs (GGUF's Q8_0 uses 32 too)


def compress(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` as int8 blocks with fp16 scales where a row splits into blocks of 32, the rest fp16."""
    import torch

    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if SCALE in name:
            raise ModelError(f"tensor name {name!r} contains {SCALE!r}, which compact files reserve")
        if not tensor.is_floating_point():
            out[name] = tensor.contiguous()
            continue
        w = tensor.detach().float()
        if w.dim() < 2 or w.numel() < MIN_ELEMENTS or w[0].numel() % BLOCK:
            out[name] = w.half().contiguous()
            continue
        blocks = w.reshape(w.shape[0], -1, BLOCK)
        # s = max|W[o, block]| / 127; an all-zero block keeps scale 1 (its q is 0 anyway)
        scale = (blocks.abs().amax(dim=2) / 127.0).half().float()
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.round(blocks / scale[..., None]).clamp(-127, 127).to(torch.int8)
        out[name] = q.reshape(w.shape).contiguous()
        out[name + SCALE] = scale.half().contiguous()
    return out


def expand(stored: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The inverse of `compress`: W = q * s block by block, every float tensor in `dtype`."""
    state: dict[str, torch.Tensor] = {}
    for name, tensor in stored.items():
        if name.endswith(SCALE):
            continue
        scale = stored.get(name + SCALE)
        if scale is not None:
            blocks = tensor.float().reshape(tensor.shape[0], -1, BLOCK) * scale.float()[..., None]
            state[name] = blocks.reshape(tensor.shape).to(dtype)
        elif tensor.is_floating_point():
            state[name] = tensor.to(dtype)
        else:
            state[name] = tensor
    return state


def save_compact(state: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, str] | None = None
                 ) -> int:
    """Write `state` compactly to `path` (atomically); returns the file's size in bytes."""
    from safetensors.torch import save_file

    header = {**(metadata or {}), "format": FORMAT}
    tmp = path.with_name(path.name + ".tmp")
    save_file(compress(state), str(tmp), metadata=header)
    tmp.replace(path)
    return path.stat().st_size


def is_compact(path: Path) -> bool:
    """Whether `path` is a safetensors file whose header names the compact format."""
    from keypaint.models.checkpoint_files import read_safetensors_header

    try:
        return read_safetensors_header(path).metadata.get("format") == FORMAT
    except ModelError:
        return False


def load_compact(path: Path, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """A compact file's tensors, expanded to `dtype`."""
    from safetensors.torch import load_file

    if not is_compact(path):
        raise ModelError(f"{path}: not a compact weights file (format {FORMAT})")
    return expand(load_file(str(path)), dtype)
