"""How fast can an exact fp16 SDXL U-Net step be on this GPU? (issue 7's SDXL 3x goal)

    HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/sdxl_bound.py        # on a CUDA GPU, about 3 minutes

Prints, side by side in one process: the SDXL U-Net's FLOPs per CFG step (batch 2, 1024 px, PyTorch's FLOP
counter), each SDPA backend on SDXL's attention shapes, cuBLAS on SDXL's GEMM shapes, and the whole U-Net
step eager and compiled as keypaint's `--fast` compiles it (fused QKV, channels_last, Inductor with CUDA
graphs). Random weights in the shipped SDXL shapes time the same as the real checkpoint.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from keypaint.core.speed.compiled import UNET_OPTIONS
from keypaint.models.configs import shipped_config

ATTENTION = {  # (q shape, k shape): SDXL's self- and cross-attention at 64x64 and 32x32 latents, batch 2
    "self 4096 tokens": ((2, 10, 4096, 64), (2, 10, 4096, 64)),
    "self 1024 tokens": ((2, 20, 1024, 64), (2, 20, 1024, 64)),
    "cross 4096 x 77": ((2, 10, 4096, 64), (2, 10, 77, 64)),
    "cross 1024 x 77": ((2, 20, 1024, 64), (2, 20, 77, 64)),
}
BACKENDS = (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION)
GEMMS = (
    (8192, 640, 1920),
    (8192, 640, 5120),
    (8192, 2560, 640),
    (2048, 1280, 3840),
    (2048, 1280, 10240),
    (2048, 5120, 1280),
    (8192, 8192, 8192),
)


def timed(f: Callable[[], Any], n: int = 20, warm: int = 3) -> float:
    for _ in range(warm):
        f()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        f()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n


def unet_inputs(device: torch.device, dtype: torch.dtype) -> tuple[tuple, dict]:
    x = torch.randn(2, 4, 128, 128, device=device, dtype=dtype)
    t = torch.tensor([500.0, 500.0], device=device)
    context = torch.randn(2, 77, 2048, device=device, dtype=dtype)
    added = {
        "text_embeds": torch.randn(2, 1280, device=device, dtype=dtype),
        "time_ids": torch.tensor([[1024.0, 1024, 0, 0, 1024, 1024]] * 2, device=device, dtype=dtype),
    }
    return (x, t, context), {"added_cond_kwargs": added}


def step_flops(config: dict) -> tuple[float, dict[str, float]]:
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config).half()
        args, kwargs = unet_inputs(torch.device("meta"), torch.float16)
        counter = FlopCounterMode(display=False)
        with counter:
            unet(*args, **kwargs)
    by_op = {str(k): v / 1e12 for k, v in counter.get_flop_counts()["Global"].items()}
    return counter.get_total_flops() / 1e12, by_op


def main() -> None:
    device, dtype = torch.device("cuda"), torch.float16
    print(torch.__version__, torch.cuda.get_device_name(device), flush=True)
    config = UNet2DConditionModel.load_config(shipped_config("sdxl-base") / "unet")
    tflop, by_op = step_flops(config)
    print(f"SDXL U-Net, one CFG step: {tflop:.2f} TFLOP", {k: round(v, 2) for k, v in by_op.items()})
    for name, (q_shape, k_shape) in ATTENTION.items():
        q, k, v = (torch.randn(s, device=device, dtype=dtype) for s in (q_shape, k_shape, k_shape))
        flop = 4 * q_shape[0] * q_shape[1] * q_shape[2] * k_shape[2] * q_shape[3]
        reference = F.scaled_dot_product_attention(q, k, v)
        row = []
        for backend in BACKENDS:
            with sdpa_kernel([backend]):
                seconds = timed(lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v))
                same = float((F.scaled_dot_product_attention(q, k, v) - reference).abs().max()) == 0
            row.append(
                f"{backend.name} {seconds * 1e3:.3f} ms {flop / seconds / 1e12:.0f} TFLOP/s"
                + (" (the default's kernel)" if same else "")
            )
        print(f"attention {name}: " + "; ".join(row), flush=True)
    for m, k, n in GEMMS:
        a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
        seconds = timed(lambda a=a, b=b: a @ b, n=50)
        print(f"GEMM {m}x{k}x{n}: {seconds * 1e3:.3f} ms {2 * m * k * n / seconds / 1e12:.0f} TFLOP/s")
    with torch.device(device):
        torch.manual_seed(0)
        unet = UNet2DConditionModel.from_config(config).to(dtype).eval()
    args, kwargs = unet_inputs(device, dtype)
    with torch.inference_mode():
        reference = unet(*args, **kwargs).sample.float()
        seconds = timed(lambda: unet(*args, **kwargs), n=10)
        print(f"U-Net step eager: {seconds * 1e3:.1f} ms, {tflop / seconds:.0f} TFLOP/s", flush=True)
        fast = copy.deepcopy(unet)
        fast.fuse_qkv_projections()
        fast.to(memory_format=torch.channels_last)
        fast.compile(fullgraph=True, options=UNET_OPTIONS)
        start = time.perf_counter()
        fast(*args, **kwargs)
        compile_seconds = time.perf_counter() - start
        seconds = timed(lambda: fast(*args, **kwargs), n=30)
        diff = float((fast(*args, **kwargs).sample.float() - reference).abs().max())
        print(
            f"U-Net step keypaint --fast: {seconds * 1e3:.2f} ms, {tflop / seconds:.0f} TFLOP/s "
            f"(compile {compile_seconds:.0f} s, max diff vs eager {diff:.1e})"
        )


if __name__ == "__main__":
    main()
