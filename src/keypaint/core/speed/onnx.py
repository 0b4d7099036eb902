"""The CPU fast path: the U-Net and the VAE decoder under ONNX Runtime, in fp32 (the same picture).

PyTorch's eager CPU kernels spend much of a small U-Net's step in convolution setup and framework
overhead; ONNX Runtime runs the exported graph, fused and constant-folded, about 1.5x faster on the
built-in model, to within 1e-5 of the eager output. Each input shape is exported once (tens of seconds)
and cached on disk, so later processes load it in a fraction of a second. Calls that the exported graph
cannot take (SDXL's extra conditioning, ControlNet residuals, attention kwargs) run the eager module.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from keypaint.core.speed.artefacts import artefact_key, publish, weights_fingerprint
from keypaint.core.speed.sessions import open_session
from keypaint.core.speed.standin import StandIn

if TYPE_CHECKING:
    import onnxruntime


def _versions() -> str:
    import diffusers
    import onnxruntime

    return f"torch {torch.__version__} diffusers {diffusers.__version__} ort {onnxruntime.__version__}"


class _OnnxGraphs:
    """ONNX Runtime sessions of one module, one per input shape, exported on first use and kept on disk."""

    def __init__(self, name: str, module: torch.nn.Module, cache_dir: Path, threads: int) -> None:
        self.name = name
        self.module = module
        self.cache_dir = cache_dir
        self.threads = threads
        self.sessions: dict[tuple, onnxruntime.InferenceSession] = {}
        self.fingerprint = weights_fingerprint(module)
        self.exported: list[Path] = []  # artefacts this object exported (not found cached)
        self.folders: dict[tuple, Path] = {}  # shapes -> artefact folder (the frozen bundle names them)

    def sync(self) -> None:
        """Drop the sessions if the weights changed since they were exported (e.g. a fused LoRA)."""
        current = weights_fingerprint(self.module)
        if current != self.fingerprint:
            self.fingerprint = current
            self.sessions.clear()
            self.folders.clear()

    def session(
        self,
        shapes: tuple,
        export: torch.nn.Module,
        examples: tuple[torch.Tensor, ...],
        names: tuple[list[str], list[str]],
    ) -> onnxruntime.InferenceSession:
        if shapes not in self.sessions:
            key = artefact_key(self.name, self.fingerprint, shapes, _versions())
            folder = self.cache_dir / f"{self.name}-{key}"
            if not (folder / "model.onnx").is_file():
                folder = self._export(folder, export, examples, names)
                self.exported.append(folder)
            self.folders[shapes] = folder
            self.sessions[shapes] = open_session(folder / "model.onnx", self.threads)
        return self.sessions[shapes]

    def _export(
        self,
        folder: Path,
        export: torch.nn.Module,
        examples: tuple[torch.Tensor, ...],
        names: tuple[list[str], list[str]],
    ) -> Path:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        # The exporter traces with autograd off but not in inference mode (the pipelines' own mode), and
        # prints its progress: keep that out of the CLI's output.
        export.eval()
        with torch.inference_mode(False), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(
                export,
                examples,
                str(tmp / "model.onnx"),
                input_names=names[0],
                output_names=names[1],
                dynamo=True,
                optimize=True,
                external_data=False,
            )
        return publish(tmp, folder)


class _UNetCall(torch.nn.Module):
    """The exported signature: (sample, timestep per item, text states) -> noise prediction."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.unet(sample, timestep, encoder_hidden_states=context, return_dict=False)[0]


class _DecoderCall(torch.nn.Module):
    """The exported VAE decode: scaled latents -> pixels in [-1, 1]."""

    def __init__(self, vae: torch.nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents, return_dict=False)[0]


class OnnxUNet(StandIn):
    """Stands in for a `UNet2DConditionModel` in a diffusers pipeline; runs it under ONNX Runtime."""

    def __init__(self, unet: torch.nn.Module, cache_dir: Path, threads: int) -> None:
        super().__init__(unet)  # config, dtype, hooks and the eager fallback
        self.graphs = _OnnxGraphs("unet", unet, cache_dir, threads)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        return_dict: bool = True,
        **extra: Any,
    ) -> Any:
        if any(value is not None for value in extra.values()) or sample.dtype != torch.float32:
            return self.inner(
                sample,
                timestep,
                encoder_hidden_states=encoder_hidden_states,
                return_dict=return_dict,
                **extra,
            )
        batch = sample.shape[0]
        steps = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1).expand(batch).contiguous()
        shapes = (tuple(sample.shape), tuple(encoder_hidden_states.shape))
        examples = (torch.zeros(shapes[0]), torch.full((batch,), 500.0), torch.zeros(shapes[1]))
        session = self.graphs.session(
            shapes, _UNetCall(self.inner), examples, (["sample", "timestep", "context"], ["noise"])
        )
        feed = {"sample": _numpy(sample), "timestep": _numpy(steps), "context": _numpy(encoder_hidden_states)}
        noise = torch.from_numpy(session.run(None, feed)[0])
        if not return_dict:
            return (noise,)
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        return UNet2DConditionOutput(sample=noise)


class OnnxVae(StandIn):
    """Stands in for an `AutoencoderKL`: decodes under ONNX Runtime; encodes (img2img) with PyTorch."""

    def __init__(self, vae: torch.nn.Module, cache_dir: Path, threads: int) -> None:
        super().__init__(vae)
        self.graphs = _OnnxGraphs("vae-decoder", vae, cache_dir, threads)

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.encode(*args, **kwargs)

    def decode(self, z: torch.Tensor, return_dict: bool = True, generator: Any = None) -> Any:
        if z.dtype != torch.float32 or getattr(self.inner, "use_tiling", False):
            return self.inner.decode(z, return_dict=return_dict, generator=generator)
        shapes = (tuple(z.shape),)
        session = self.graphs.session(
            shapes, _DecoderCall(self.inner), (torch.zeros(shapes[0]),), (["latents"], ["pixels"])
        )
        pixels = torch.from_numpy(session.run(None, {"latents": _numpy(z)})[0])
        if not return_dict:
            return (pixels,)
        from diffusers.models.autoencoders.vae import DecoderOutput

        return DecoderOutput(sample=pixels)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).contiguous().numpy()


def onnx_runtime_available() -> bool:
    """ONNX Runtime to run the graphs, and onnx + onnxscript for torch's exporter (the `fast` extra)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx", "onnxscript"))
