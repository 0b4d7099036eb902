"""Making a pipeline fast: `accelerate(pipe, SpeedOptions)` returns the pipeline a `Painter` runs.

- exact (`fast=True`): CPU: U-Net and VAE decoder under ONNX Runtime (`onnx`); GPU: channels_last, fused
  QKV, torch.compile with CUDA graphs (`compiled`). Artefacts are cached under `cache_dir`.
- approximate, opt-in: DeepCache (`deepcache`), token merging (`tome`); bf16 is the Painter's `dtype`,
  not a speed option.
- low memory (GPU): diffusers' model or sequential CPU offload, VAE tiling.

The plain pipeline is never changed except where said: the GPU path compiles its U-Net and VAE in place,
and token merging sets the U-Net's self-attention processors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keypaint.core.speed.artefacts import default_cache_dir
from keypaint.core.speed.options import EXACT_TOLERANCE, Offload, SpeedOptions
from keypaint.errors import InvalidParams

if TYPE_CHECKING:
    import torch

__all__ = ["EXACT_TOLERANCE", "Accelerated", "Offload", "SpeedOptions", "accelerate"]


@dataclass
class Accelerated:
    """A pipeline with the speed options applied, and what the Painter calls around each run."""

    pipe: Any  # a DiffusionPipeline sharing the plain pipeline's components (some stood in for)
    options: SpeedOptions
    backend: str  # "eager", "onnxruntime" or "torch.compile"
    notes: dict[str, Any] = field(default_factory=dict)  # cache hits, what was applied

    def before_run(self) -> None:
        """Check cached graphs still match the weights (adapters) and start DeepCache's schedule anew."""
        from keypaint.core.speed.deepcache import DeepCacheUNet
        from keypaint.core.speed.onnx import OnnxUNet, OnnxVae

        for part in (getattr(self.pipe, "unet", None), self.pipe.vae):
            if isinstance(part, OnnxUNet | OnnxVae):
                part.graphs.sync()
            if isinstance(part, DeepCacheUNet):
                part.reset()

    def remove_approximations(self) -> None:
        """Give the plain U-Net back its own blocks (DeepCache) and attention processors (token merging)."""
        from keypaint.core.speed.deepcache import DeepCacheUNet

        if isinstance(self.pipe.unet, DeepCacheUNet):
            self.pipe.unet.remove()
        merging = self.notes.get("token_merging")
        if merging is not None:
            merging.remove()

    def after_run(self, shape: tuple) -> None:
        """Save newly compiled artefacts once per input shape (GPU path)."""
        cache = self.notes.get("compile_cache")
        if cache is not None:
            cache.save(shape)


def accelerate(pipe: Any, options: SpeedOptions) -> Accelerated:
    """Apply `options` to `pipe` (a StableDiffusion or StableDiffusionXL pipeline on its device).

    `options` are valid (`SpeedOptions.validate`: a `Painter` checks them once, when it is made)."""
    import torch

    if options.threads is not None:
        torch.set_num_threads(options.threads)  # PyTorch's pool is process-wide; this is the caller's choice
    unet = getattr(pipe, "unet", None)
    device = (unet if unet is not None else pipe.transformer).device
    if unet is None and (options.fast or options.deep_cache > 1 or options.token_merging > 0):
        raise InvalidParams("fast", "--fast, DeepCache and token merging run U-Net models; SD3 and Flux take "
                            "the plain path (offload and VAE tiling work)")
    if options.offload is not Offload.NONE or options.vae_tiling or options.fp8_weights:
        _low_memory(pipe, options, device)
    notes: dict[str, Any] = {}
    if options.token_merging > 0:
        from keypaint.core.speed.tome import TokenMerging

        notes["token_merging"] = TokenMerging(pipe.unet, options.token_merging)
    if options.deep_cache > 1:
        from keypaint.core.speed.deepcache import DeepCacheUNet

        fast = _with(pipe, unet=DeepCacheUNet(pipe.unet, options.deep_cache))
        return Accelerated(fast, options, "eager", {**notes, "deep_cache": options.deep_cache})
    if not options.fast:
        return Accelerated(pipe, options, "eager", notes)
    cache_dir = options.cache_dir or default_cache_dir()
    backend = options.backend
    if backend == "auto":
        backend = "onnxruntime" if device.type == "cpu" else "compile"
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise InvalidParams("backend", "ONNX Runtime runs keypaint's graphs on the CPU only")
        return _onnx(pipe, options, cache_dir)
    from keypaint.core.speed.compiled import CompileCache, compile_pipeline_parts

    cache = CompileCache(cache_dir, pipe.unet, pipe.vae)
    hit = cache.load() if options.compiler == "inductor" else False
    unet = compile_pipeline_parts(pipe.unet, pipe.vae, options.compiler)
    notes = {"compile_cache": cache if options.compiler == "inductor" else None, "cache_hit": hit}
    return Accelerated(_with(pipe, unet=unet), options, "torch.compile", notes)


def _onnx(pipe: Any, options: SpeedOptions, cache_dir: Any) -> Accelerated:
    import torch

    from keypaint.core.speed.onnx import OnnxUNet, OnnxVae, onnx_runtime_available

    if not onnx_runtime_available():
        raise InvalidParams("fast", 'the CPU fast path needs ONNX Runtime: pip install "keypaint[fast]"')
    if pipe.unet.dtype != torch.float32:
        raise InvalidParams("fast", "the CPU fast path runs fp32 models (the exact picture); drop --dtype")
    threads = options.threads or torch.get_num_threads()
    unet, vae = OnnxUNet(pipe.unet, cache_dir, threads), OnnxVae(pipe.vae, cache_dir, threads)
    fast = _with(pipe, unet=unet, vae=vae)
    return Accelerated(fast, options, "onnxruntime", {"threads": threads})


def _low_memory(pipe: Any, options: SpeedOptions, device: torch.device) -> None:
    """diffusers' own offloading and tiling; they act on the pipeline's modules in place."""
    if options.vae_tiling:
        pipe.vae.enable_tiling()
    if options.fp8_weights:
        _fp8_weights(pipe)
    if options.offload is Offload.NONE:
        return
    if device.type not in ("cuda", "cpu"):
        raise InvalidParams("offload", f"offloading needs a CUDA GPU, not {device.type}")
    if device.type == "cpu":
        raise InvalidParams("offload", "the model already lives in CPU memory; offloading is for GPUs")
    if options.offload is Offload.MODEL:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)


def _fp8_weights(pipe: Any) -> None:
    """The denoiser's weights (and a T5 encoder's, SD3/Flux) stored as float8 e4m3fn: half of fp16's memory.

    diffusers' layerwise casting upcasts each layer to the model's dtype just before it runs; norms,
    embeddings and other small layers stay as they are (its "auto" skip list)."""
    import torch
    from diffusers.hooks import apply_layerwise_casting

    unet = getattr(pipe, "unet", None)
    denoiser = unet if unet is not None else pipe.transformer
    apply_layerwise_casting(denoiser, storage_dtype=torch.float8_e4m3fn, compute_dtype=denoiser.dtype)
    for name in ("text_encoder_2", "text_encoder_3"):
        t5 = getattr(pipe, name, None)
        if type(t5).__name__ == "T5EncoderModel":
            # T5's feed-forward casts its input to `wo`'s stored dtype, so `wo` keeps its own
            kept = ("wo", "norm", "shared", "embed", "relative_attention")
            apply_layerwise_casting(t5, storage_dtype=torch.float8_e4m3fn, compute_dtype=t5.dtype,
                                    skip_modules_pattern=kept)


def _with(pipe: Any, **parts: torch.nn.Module) -> Any:
    """A pipeline of the same class over the same components, with `parts` stood in for."""
    import inspect

    accepted = inspect.signature(type(pipe).__init__).parameters
    kwargs = {k: v for k, v in {**pipe.components, **parts}.items() if k in accepted}
    # What the plain pipeline was made with (no safety checker, no SDXL pixel watermark: keypaint marks
    # its pictures itself), so both paths paint the same picture.
    if "requires_safety_checker" in accepted:
        kwargs["requires_safety_checker"] = False
    if "add_watermarker" in accepted:
        kwargs["add_watermarker"] = getattr(pipe, "watermark", None) is not None
    if "force_zeros_for_empty_prompt" in accepted:
        kwargs["force_zeros_for_empty_prompt"] = bool(pipe.config.get("force_zeros_for_empty_prompt", True))
    fast = type(pipe)(**kwargs)
    fast.set_progress_bar_config(disable=True)
    return fast
