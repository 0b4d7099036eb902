"""Writing the frozen bundle from a fast-path run (this side imports PyTorch and diffusers).

After the Painter runs the built-in model on the CPU fast path, `BundleRecorder` adds what the run used to
the bundle: the text encoder exported once, the tokenizer file, the ONNX graphs of the run's shapes
(already exported by the fast path, named here), and the sampler's linear plan read off diffusers'
scheduler (`probe_plan`). A later process can then paint the same request with `ColdStartModel`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from keypaint.core.onnx_coldstart.bundle import Manifest, bundle_dir, model_digest, read_manifest, shape_key
from keypaint.core.onnx_coldstart.model import TEXT_ENCODER, TOKENIZER
from keypaint.core.onnx_coldstart.plan import SamplerPlan, plan_key
from keypaint.core.samplers import SPECS, Sampler, make_scheduler

if TYPE_CHECKING:
    from keypaint.core.speed import Accelerated
    from keypaint.models.loaded import LoadedModel

PLAN_TOLERANCE = 1e-4  # largest error of a plan against its scheduler on random numbers (relative)


def probe_plan(sampler: Sampler, steps: int, base_config: dict[str, Any]) -> SamplerPlan | None:
    """The linear plan of `sampler` at `steps`, read off diffusers' scheduler; None if it is not linear.

    The pipeline's loop is followed exactly (x_T times `init_noise_sigma`, `scale_model_input` before each
    U-Net call, `step` after it) on unit vectors: element j of every tensor is the coefficient of v_j.
    The plan is then checked against the scheduler on random numbers; samplers that add fresh noise are
    never linear and are not tried.
    """
    if SPECS[sampler].ancestral:
        return None
    calls, inputs, states = _follow(sampler, steps, base_config, None)
    # one row per vector, shaped like a batch of one latent with `width` elements (UniPC wants a batch axis)
    basis = torch.eye(len(calls) + 1, dtype=torch.float64).unsqueeze(1)
    try:
        _, inputs, states = _follow(sampler, steps, base_config, basis)
    except (RuntimeError, ValueError, IndexError):  # a scheduler that is not elementwise: no plan
        return None
    plan = SamplerPlan(
        sampler=sampler.value, steps=steps, timesteps=tuple(float(t) for t in calls),
        inputs=tuple(tuple(float(c) for c in row.reshape(-1)) for row in inputs),
        states=tuple(tuple(float(c) for c in row.reshape(-1)) for row in states),
    )
    return plan if _agrees(plan, sampler, steps, base_config) else None


def _follow(sampler: Sampler, steps: int, base_config: dict[str, Any], basis: torch.Tensor | None
            ) -> tuple[list[float], list[torch.Tensor], list[torch.Tensor]]:
    """Run the scheduler as the pipeline does; with `basis`, on its rows (x_T first, then each eps)."""
    scheduler = make_scheduler(sampler, base_config, [0])
    scheduler.set_timesteps(steps, device="cpu")
    timesteps = [float(t) for t in scheduler.timesteps]
    if basis is None:
        return timesteps, [], []
    x = basis[0] * scheduler.init_noise_sigma
    inputs, states = [], []
    for k, t in enumerate(scheduler.timesteps):
        inputs.append(scheduler.scale_model_input(x, t).clone())
        x = scheduler.step(basis[k + 1], t, x, return_dict=False)[0]
        states.append(x.clone())
    return timesteps, inputs, states


def _agrees(plan: SamplerPlan, sampler: Sampler, steps: int, base_config: dict[str, Any]) -> bool:
    """The plan reproduces the scheduler on random float32 latents and model outputs."""
    generator = torch.Generator().manual_seed(1234)
    shape = (1, 4, 8, 8)
    scheduler = make_scheduler(sampler, base_config, [0])
    scheduler.set_timesteps(steps, device="cpu")
    x_t = torch.randn(shape, generator=generator)
    x = x_t * scheduler.init_noise_sigma
    vectors = [x_t.numpy()]
    worst = 0.0
    for k, t in enumerate(scheduler.timesteps):
        model_in = scheduler.scale_model_input(x, t)
        worst = max(worst, _error(plan.combine(plan.inputs[k], vectors), model_in))
        eps = torch.randn(shape, generator=generator)
        vectors.append(eps.numpy())
        x = scheduler.step(eps, t, x, return_dict=False)[0]
        worst = max(worst, _error(plan.combine(plan.states[k], vectors), x))
    return worst <= PLAN_TOLERANCE


def _error(planned: Any, actual: torch.Tensor) -> float:
    actual_np = actual.numpy()
    scale = max(float(abs(actual_np).max()), 1.0)
    return float(abs(planned - actual_np).max()) / scale


class _TextEncoderCall(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _export_text_encoder(model: LoadedModel, folder: Path) -> None:
    """MiniLM as an ONNX graph over any number of chunks (the batch axis is dynamic)."""
    path = folder / TEXT_ENCODER
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    window = int(model.pipe.tokenizer.model_max_length)
    ids = torch.zeros((2, window), dtype=torch.int64)
    chunks = torch.export.Dim("chunks", min=1, max=64)
    module = _TextEncoderCall(model.pipe.text_encoder).eval()
    tmp = Path(tempfile.mkdtemp(prefix=".text-encoder-", dir=folder))
    with torch.inference_mode(False), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(
            module, (ids, torch.ones_like(ids)), str(tmp / "model.onnx"),
            input_names=["input_ids", "attention_mask"], output_names=["hidden"], dynamo=True, optimize=True,
            external_data=False,
            dynamic_shapes={"input_ids": {0: chunks}, "attention_mask": {0: chunks}},
        )
    os.replace(tmp / "model.onnx", path)
    tmp.rmdir()


def _save_tokenizer(model: LoadedModel, folder: Path) -> None:
    if (folder / TOKENIZER).is_file():
        return
    backend = model.pipe.tokenizer.backend_tokenizer
    copy = type(backend).from_str(backend.to_str())
    copy.no_padding()
    copy.no_truncation()
    copy.save(str(folder / TOKENIZER))


class BundleRecorder:
    """Adds a Painter's fast-path runs to its model's bundle; a run with nothing new costs a set lookup.

    The bundle's folder (a digest of the model files) is found once; the manifest is read and written
    only when a run used a sampler, step count or graph this recorder has not written yet.
    """

    def __init__(self, cache_dir: Path, model: LoadedModel, text_encoder: Path) -> None:
        assert model.source is not None
        self.model = model
        self.folder = bundle_dir(cache_dir, model_digest(Path(model.source), text_encoder))
        self._written: set[tuple[str, ...]] = set()

    def record(self, speed: Accelerated, sampler: Sampler, steps: int, base_config: dict[str, Any]) -> bool:
        """Add what this run used; True when the bundle changed."""
        if speed.backend != "onnxruntime":
            return False
        graphs = {(name, shape_key(*shapes), str(folder))
                  for name, part in (("unet", speed.pipe.unet), ("vae", speed.pipe.vae))
                  for shapes, folder in part.graphs.folders.items()}
        wanted = graphs | {("plan", plan_key(sampler.value, steps))}
        if wanted <= self._written:
            return False
        changed = self._write(graphs, sampler, steps, base_config)
        self._written |= wanted
        return changed

    def _write(self, graphs: set[tuple[str, ...]], sampler: Sampler, steps: int,
               base_config: dict[str, Any]) -> bool:
        model, folder = self.model, self.folder
        pipe = model.pipe
        manifest = read_manifest(folder) or Manifest(
            model=model.name, sha256=model.sha256 or "", native_size=model.native_size,
            latent_channels=int(pipe.vae.config.latent_channels), vae_scale=int(pipe.vae_scale_factor),
            scaling_factor=float(pipe.vae.config.scaling_factor), window=int(pipe.tokenizer.model_max_length),
            pad_token=int(pipe.tokenizer.pad_token_id),
        )
        before = json.dumps(manifest.to_json(), sort_keys=True)
        folder.mkdir(parents=True, exist_ok=True)
        _export_text_encoder(model, folder)
        _save_tokenizer(model, folder)
        for name, key, graph in graphs:
            table = manifest.unet if name == "unet" else manifest.vae
            table[key] = os.path.relpath(Path(graph) / "model.onnx", folder)
        key = plan_key(sampler.value, steps)
        if key not in manifest.plans:
            plan = probe_plan(sampler, steps, base_config)
            if plan is not None:
                manifest.plans[key] = plan.to_json()
        if json.dumps(manifest.to_json(), sort_keys=True) == before:
            return False
        from keypaint.core.onnx_coldstart.bundle import write_manifest

        write_manifest(folder, manifest)
        return True
