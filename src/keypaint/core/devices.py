"""Choosing where and in what precision to run: cuda, then mps, then cpu; fp16 on GPUs, fp32 on CPUs."""

from __future__ import annotations

import torch

from keypaint.errors import InvalidParams

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device if it is there, else the best one present (cuda, then mps, then cpu)."""
    if requested in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError) as err:
        raise InvalidParams(
            "device", f"unknown device {requested!r} (use auto, cpu, cuda, cuda:N or mps)"
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParams("device", "cuda was asked for but no CUDA GPU is available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InvalidParams(
            "device", f"{requested} does not exist ({torch.cuda.device_count()} CUDA devices)"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidParams("device", "mps was asked for but is not available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise InvalidParams("device", f"unsupported device {requested!r}")
    return device


def pick_dtype(device: torch.device, requested: str | None = None) -> torch.dtype:
    """fp16 on GPUs (half the memory, tensor cores), fp32 on CPUs (fp16 matmuls there are slow or missing)."""
    if requested in (None, "", "auto"):
        return torch.float32 if device.type == "cpu" else torch.float16
    if requested not in DTYPES:
        raise InvalidParams("dtype", f"unknown dtype {requested!r} (use auto, fp32, fp16 or bf16)")
    dtype = DTYPES[requested]
    if device.type == "cpu" and dtype is torch.float16:
        raise InvalidParams("dtype", "fp16 is not supported on the CPU; use fp32 or bf16")
    return dtype


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, str(dtype))
