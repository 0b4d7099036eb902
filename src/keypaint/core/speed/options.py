"""`SpeedOptions`: how a `Painter` runs its model: exact speed-ups, opt-in approximations, low memory.

Exact means the same picture as the plain diffusers modules up to float rounding: the bench checks the
largest pixel difference against `EXACT_TOLERANCE`. Approximate speed-ups (DeepCache, bf16) change the
picture; they are separate options and the bench reports their cost (PSNR against the exact picture).
Approximate options run on the plain modules, so they do not combine with `fast`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from keypaint.errors import InvalidParams

# Largest pixel difference (0-255) the exact fast path may show against the plain path. fp32 ONNX Runtime on
# a CPU stays within 1-2 (kernel rounding); fp16 compiled kernels on a GPU round differently at every step.
EXACT_TOLERANCE = {"cpu": 2, "cuda": 16}
MAX_MERGING = 0.75  # token merging: at most three of every four tokens (each 2x2 cell keeps one)


class Offload(StrEnum):
    """Where the weights wait while they are not computing (GPU low-memory modes, diffusers' offloading)."""

    NONE = "none"  # everything on the GPU
    MODEL = "model"  # each model (text encoder, U-Net, VAE) moves to the GPU only while it runs
    SEQUENTIAL = "sequential"  # each layer moves to the GPU only while it runs: least memory, slowest


@dataclass(frozen=True)
class SpeedOptions:
    """Speed settings of one Painter; the default runs the plain diffusers modules."""

    fast: bool = False  # exact fast path: ONNX Runtime on CPUs; compile + CUDA graphs on GPUs
    deep_cache: int = 1  # approximate (DeepCache): recompute the deep U-Net blocks every N-th step; 1 = off
    token_merging: float = 0.0  # approximate (ToMe): share of the top attention level's tokens merged; 0 off
    threads: int | None = None  # CPU threads for PyTorch and ONNX Runtime (process-wide); None: PyTorch's
    offload: Offload = Offload.NONE  # GPU low-memory mode
    vae_tiling: bool = False  # decode large pictures tile by tile (low memory; seams are blended)
    # approximate, low memory: the denoiser's (and SD3/Flux's T5's) weights stored as float8 e4m3fn, each
    # layer upcast to the model's dtype while it runs (diffusers' layerwise casting)
    fp8_weights: bool = False
    cache_dir: Path | None = None  # compiled artefacts; None: <KEYPAINT_HOME>/cache/speed
    backend: Literal["auto", "onnxruntime", "compile"] = (
        "auto"  # fast path: auto = ORT on CPUs, compile on GPUs
    )
    compiler: Literal["inductor", "eager"] = "inductor"  # torch.compile backend; eager only traces (tests)
    # CPU fast path, built-in model: start from the frozen bundle a fast run left (no PyTorch import), and
    # add to it after each run. Steps report numpy latents there, so live previews keep this off.
    frozen: bool = False

    def validate(self) -> None:
        """Raise `InvalidParams` for settings that cannot run together; cheap, no model needed."""
        if isinstance(self.deep_cache, bool) or not isinstance(self.deep_cache, int):
            raise InvalidParams("deep_cache", f"must be a whole number, got {self.deep_cache!r}")
        if not 1 <= self.deep_cache <= 10:
            raise InvalidParams("deep_cache", f"must be within [1, 10], got {self.deep_cache}")
        merging = self.token_merging
        if (
            isinstance(merging, bool)
            or not isinstance(merging, int | float)
            or not 0 <= merging <= MAX_MERGING
        ):
            raise InvalidParams("token_merging", f"must be a ratio in [0, {MAX_MERGING}], got {merging!r}")
        if self.fast and merging > 0:
            raise InvalidParams("token_merging", "runs on the plain modules; it cannot be combined with fast")
        if self.threads is not None and not (isinstance(self.threads, int) and 1 <= self.threads <= 256):
            raise InvalidParams("threads", f"must be within [1, 256], got {self.threads!r}")
        if self.backend not in ("auto", "onnxruntime", "compile"):
            raise InvalidParams("backend", f"unknown backend {self.backend!r} (auto, onnxruntime, compile)")
        if self.fast and self.deep_cache > 1:
            raise InvalidParams("deep_cache", "runs on the plain modules; it cannot be combined with fast")
        if self.fast and self.fp8_weights:
            raise InvalidParams("fp8_weights", "runs on the plain modules; it cannot be combined with fast")
        if self.fast and self.offload is not Offload.NONE:
            raise InvalidParams("offload", "offloading moves weights that compiled code holds; not with fast")

    @property
    def approximate(self) -> bool:
        """True when the picture may differ from the plain path by more than float rounding."""
        return self.deep_cache > 1 or self.token_merging > 0 or self.fp8_weights


def approximations(options: SpeedOptions) -> dict[str, float | int | str]:
    """What the picture depends on besides its params, under A1111's infotext names where it has them."""
    extra: dict[str, float | int | str] = {}
    if options.deep_cache > 1:
        extra["DeepCache"] = options.deep_cache
    if options.token_merging > 0:
        extra["Token merging ratio"] = options.token_merging
    if options.fp8_weights:
        extra["FP8 weights"] = "e4m3fn"
    return extra
