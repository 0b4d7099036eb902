"""`load_model`: one entry point for every model keypaint can paint with, always offline.

- None, "builtin" or "keypaint-emoji": the built-in model (`keypaint.builtin`).
- A diffusers folder (has model_index.json): `DiffusionPipeline.from_pretrained(local_files_only=True)`.
- A `.safetensors` single file in the original SD 1.x / 2.x / SDXL layout: validated, detected from its
  keys, converted with the config folder keypaint ships (or `config_dir`).
- A pickle (`.ckpt`, `.pt`, `.pth`, `.bin`): only with `allow_pickle`, read weights-only, rewritten as a
  temporary safetensors file and then treated like one.
- An SD3/SD3.5 or Flux.1 `.safetensors` (whole checkpoint or transformer alone, BFL, ComfyUI or diffusers
  names, fp8 weights upcast) or `.gguf` transformer, with the parts it lacks by option or found beside it
  (`flow_files`, `flow_loader`).
- A bare NAME: looked up in `<home>/models`.

`LoadedModel.sha256` is the hash of the file loaded; for a diffusers folder it is the hash of the U-Net
weights file (`unet/diffusion_pytorch_model.safetensors`, or the shard index / .bin when that is what
the folder has), since that is what tells two SD fine-tunes apart.
"""

from __future__ import annotations

import pickle
import tempfile
from importlib.metadata import version as package_version
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DiffusionPipeline, FluxPipeline, StableDiffusion3Pipeline
from packaging.version import Version

from keypaint.errors import ModelError
from keypaint.keywords.vocabulary import Vocabulary
from keypaint.models.assemble import assemble_pipeline, check_complete
from keypaint.models.checkpoint_files import (
    SAFETENSORS_SUFFIX,
    is_pickle,
    load_safetensors,
    pickle_to_safetensors,
    read_safetensors_header,
    refuse_pickle,
    unpickling_refusal,
)
from keypaint.models.configs import shipped_config
from keypaint.models.detect import Detected, detect_checkpoint, kind_from_diffusers
from keypaint.models.flow_files import ComponentFiles, find_components
from keypaint.models.flow_layout import FlowDetected
from keypaint.models.hashing import file_sha256
from keypaint.models.loaded import LoadedModel, ModelKind
from keypaint.models.preflight import CheckedFile, check_model, check_vae
from keypaint.models.registry import BuiltinModel, is_diffusers_folder, keypaint_home
from keypaint.models.single_file import has_vae, pipeline_from_checkpoint, vae_like

# diffusers >= 0.42 names the pipeline's argument `dtype` and warns about `torch_dtype` on every load;
# older releases know only `torch_dtype`.
_DTYPE_ARG = "dtype" if Version(package_version("diffusers")) >= Version("0.42") else "torch_dtype"
_UNET_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json",
                 "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.bin")


def load_model(spec: str | Path | None, *, home: Path | None = None, vae: str | Path | None = None,
               allow_pickle: bool = False, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32, config_dir: Path | None = None,
               max_bytes: int | None = None, builtin: BuiltinModel | None = None,
               components: ComponentFiles | None = None) -> LoadedModel:
    """Load the model `spec` names, offline; ModelError (one line) for anything missing or unsafe.

    `vae` replaces the model's VAE with a separate file or diffusers folder. `config_dir` replaces the
    shipped config used to convert a single file (tests use tiny models' saved folders). `max_bytes` caps
    a model's size on disk (default: `preflight.max_model_bytes()`). Everything `check_model` can tell is
    checked first, so a bad file is refused in milliseconds, before it is hashed or read.
    `builtin`: the built-in model (`keypaint.builtin.MODEL`, handed down), loaded when `spec` is None.
    `components`: separate text-encoder files of an SD3/Flux model (`--clip-l`, `--clip-g`, `--t5`).
    """
    home = home or keypaint_home()
    checked = check_model(spec, home=home, allow_pickle=allow_pickle, max_bytes=max_bytes,
                          components=components, vae=Path(vae) if vae is not None else None)
    vae_path = None
    if vae is not None:
        vae_path = check_vae(vae, home=home, allow_pickle=allow_pickle, max_bytes=max_bytes)
    flow = checked is not None and isinstance(checked.detected, FlowDetected)
    if components and not flow:
        raise ModelError("--clip-l, --clip-g and --t5 are for SD3 and Flux single files")
    if checked is not None and isinstance(checked.detected, FlowDetected):
        model = _load_flow_file(checked, checked.detected, home, dtype, config_dir,
                                components or ComponentFiles(), vae_path)
        vae_path = None  # built into the pipeline already
    elif checked is None:
        model = _load_builtin(builtin, device, dtype)
    elif checked.path.is_dir():
        model = _load_folder(checked.path, home, dtype, allow_pickle)
    else:
        model = _load_file(checked, home, dtype, config_dir)
    if vae_path is not None:
        model.pipe.vae = _load_vae(vae_path, model.pipe.vae, home, dtype, allow_pickle)
        model.pipe.register_modules(vae=model.pipe.vae)
    model.pipe.to(device)
    return model


def _load_builtin(builtin: BuiltinModel | None, device: torch.device | str,
                  dtype: torch.dtype) -> LoadedModel:
    if builtin is None:
        raise ModelError("no built-in model was handed to the loader (builtin=keypaint.builtin.MODEL); "
                         "pass --model with a Stable Diffusion checkpoint instead")
    return builtin.load(device, dtype)


def _scratch_dir(home: Path) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder beside the cache (same disk as the models, not a small /tmp)."""
    root = home / "cache" / "tmp"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return tempfile.TemporaryDirectory(prefix="keypaint-", ignore_cleanup_errors=True)
    return tempfile.TemporaryDirectory(prefix="convert-", dir=root, ignore_cleanup_errors=True)


def _read_state_dict(path: Path, home: Path, allow_pickle: bool,
                     sidecar: Path | None) -> tuple[dict[str, torch.Tensor], Detected | None]:
    """Validated tensors of `path` (pickles converted first) and, when they hold a U-Net, what model it is."""
    if is_pickle(path):
        if not allow_pickle:
            raise refuse_pickle(path)
        with _scratch_dir(home) as tmp:
            converted = pickle_to_safetensors(path, Path(tmp) / f"{path.stem}{SAFETENSORS_SUFFIX}")
            return _read_state_dict(converted, home, False, sidecar)
    header = read_safetensors_header(path)
    detected = None
    if any(k.startswith("model.diffusion_model.") for k in header.tensors) or sidecar is not None:
        detected = detect_checkpoint(header, path.name, sidecar)
    return load_safetensors(path), detected


def _load_file(checked: CheckedFile, home: Path, dtype: torch.dtype, config_dir: Path | None) -> LoadedModel:
    """A single file that passed `check_model`: hashed (once, then cached), read, converted."""
    path = checked.path
    sidecar = path.with_suffix(".yaml")
    sidecar = sidecar if sidecar.is_file() else None
    if config_dir is not None and not (config_dir / "model_index.json").is_file():
        raise ModelError(f"config folder {config_dir} has no model_index.json")
    sha = file_sha256(path, home=home)
    if checked.header is None:  # an allowed pickle: converted to safetensors, then validated like one
        checkpoint, detected = _read_state_dict(path, home, True, sidecar)
    else:
        checkpoint, detected = load_safetensors(path), checked.detected
    if detected is None:
        raise ModelError(f"{path.name}: no Stable Diffusion U-Net in this file (no model.diffusion_model.*); "
                         "is it a LoRA, a VAE or an embedding rather than a full model?")
    folder = config_dir or shipped_config(detected.config)
    # The shipped configs match the detected parameterization by construction; an explicit config_dir is
    # taken as the caller's word, scheduler included.
    prediction = detected.prediction_type if config_dir is None else None
    pipe = pipeline_from_checkpoint(checkpoint, detected, folder, dtype=dtype, name=path.name,
                                    prediction_type=prediction)
    return LoadedModel(name=path.stem, kind=detected.kind, pipe=pipe, sha256=sha, source=path)


def _load_flow_file(checked: CheckedFile, detected: FlowDetected, home: Path, dtype: torch.dtype,
                    config_dir: Path | None, components: ComponentFiles, vae: Path | None) -> LoadedModel:
    """An SD3/Flux checkpoint or transformer file, with the parts it lacks (by option or found beside it)."""
    from keypaint.models.flow_loader import load_flow_pipeline

    path = checked.path
    encoders, vae = find_components(detected, path, components, vae)
    if config_dir is not None and not (config_dir / "model_index.json").is_file():
        raise ModelError(f"config folder {config_dir} has no model_index.json")
    sha = file_sha256(path, home=home)
    pipe = load_flow_pipeline(path, detected, encoders=encoders, vae=vae, dtype=dtype,
                              config=config_dir or shipped_config(detected.config), name=path.name,
                              no_t5=components.no_t5)
    return LoadedModel(name=path.stem, kind=detected.kind, pipe=pipe, sha256=sha, source=path)


def _load_folder(path: Path, home: Path, dtype: torch.dtype, allow_pickle: bool) -> LoadedModel:
    index = DiffusionPipeline.load_config(str(path))
    skip = {k: None for k in ("safety_checker", "feature_extractor", "image_encoder") if k in index}
    try:
        # diffusers and transformers read any .bin here with torch.load(weights_only=True).
        pipe = DiffusionPipeline.from_pretrained(str(path), local_files_only=True, **{_DTYPE_ARG: dtype},
                                                 use_safetensors=None if allow_pickle else True, **skip)
    except Exception as e:  # OSError/ValueError/EnvironmentError from a broken or partial folder
        raise ModelError(f"{path.name}: cannot load this diffusers folder ({_why(e)})") from None
    if isinstance(pipe, FluxPipeline | StableDiffusion3Pipeline):
        kind = ModelKind.FLUX if isinstance(pipe, FluxPipeline) else ModelKind.SD3
        flow_pipe = (FluxPipeline if kind is ModelKind.FLUX else StableDiffusion3Pipeline)(
            **{k: v for k, v in pipe.components.items() if k not in ("image_encoder", "feature_extractor")})
        folder = path / "transformer"
        weights = next((folder / f for f in _UNET_WEIGHTS if (folder / f).is_file()), None)
        return LoadedModel(name=path.name, kind=kind, pipe=flow_pipe, sha256=file_sha256(weights, home=home)
                           if weights else None, source=path, vocabulary=Vocabulary.beside(path))
    unet = getattr(pipe, "unet", None)
    if unet is None:
        raise ModelError(f"{path.name}: {type(pipe).__name__} has no U-Net; not a Stable Diffusion model")
    kind = kind_from_diffusers(dict(unet.config), type(getattr(pipe, "text_encoder", None)).__name__)
    force_zeros = bool(index.get("force_zeros_for_empty_prompt", True))
    text_to_image = assemble_pipeline(kind, pipe.components, name=path.name,
                                      force_zeros_for_empty_prompt=force_zeros)
    weights = next((path / "unet" / f for f in _UNET_WEIGHTS if (path / "unet" / f).is_file()), None)
    sha = file_sha256(weights, home=home) if weights else None
    return LoadedModel(name=path.name, kind=kind, pipe=text_to_image, sha256=sha, source=path,
                       vocabulary=Vocabulary.beside(path))


def _load_vae(path: Path, reference: AutoencoderKL, home: Path, dtype: torch.dtype,
              allow_pickle: bool) -> AutoencoderKL:
    """A separate VAE (single file or diffusers folder) to use in place of the model's own."""
    if path.is_dir():
        sub = "vae" if is_diffusers_folder(path) else None
        try:
            use_safetensors = None if allow_pickle else True
            vae = AutoencoderKL.from_pretrained(str(path), subfolder=sub, local_files_only=True,
                                                torch_dtype=dtype, use_safetensors=use_safetensors)
        except Exception as e:
            raise ModelError(f"{path.name}: cannot load this VAE folder ({_why(e)})") from None
        check_complete(vae, path.name, "VAE")
        return vae
    checkpoint, _ = _read_state_dict(path, home, allow_pickle, None)
    if not has_vae(checkpoint):
        raise ModelError(f"{path.name}: not a VAE (no decoder.conv_in.weight in any known layout)")
    return vae_like(reference, checkpoint, dtype, path.name)


def _why(error: Exception) -> str:
    """The first line of a library's error, or why weights-only unpickling refused (never its advice)."""
    if isinstance(error, pickle.UnpicklingError) or "weights_only" in str(error):
        return f"a pickle holds more than weights: {unpickling_refusal(error)}"
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else error.__class__.__name__
