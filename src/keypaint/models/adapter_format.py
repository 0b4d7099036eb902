"""The adapter file format: what a fine-tuned LoRA or embedding says about itself in its safetensors header.

Every file `keypaint finetune` writes carries a `keypaint` JSON string (base model name and hash, token,
method, steps, images used ...) that the Painter checks before applying it. LoRA files also carry the
kohya `ss_*` keys and the Stability `modelspec.*` keys that A1111's and ComfyUI's LoRA browsers show.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from keypaint.models.loaded import LoadedModel, ModelKind

FORMAT = 1
KEY = "keypaint"

# kohya's `ss_base_model_version` / modelspec architecture names for each model family.
BASE_VERSION = {
    ModelKind.SD1: "sd_v1",
    ModelKind.SD2: "sd_v2",
    ModelKind.SDXL: "sdxl_base_v1-0",
    ModelKind.KEYPAINT: "keypaint_emoji",
    ModelKind.SD3: "sd3",  # kohya's sd-scripts names (flux_train_network, sd3_train_network)
    ModelKind.FLUX: "flux1",
}
ARCHITECTURE = {
    ModelKind.SD1: "stable-diffusion-v1",
    ModelKind.SD2: "stable-diffusion-v2-512",
    ModelKind.SDXL: "stable-diffusion-xl-v1-base",
    ModelKind.KEYPAINT: "keypaint-emoji",
    ModelKind.SD3: "stable-diffusion-3",
    ModelKind.FLUX: "flux-1-dev",
}


@dataclass
class FinetuneInfo:
    """The `keypaint` metadata of a fine-tuned LoRA or embedding."""

    method: str  # lora, dreambooth or textual-inversion
    token: str  # the word that calls up what was learned
    base_model: str  # the model it was trained on, by name
    base_sha256: str  # that model's hash (keypaint's model hash, see `model_fingerprint`)
    base_kind: str  # sd1, sd2, sdxl or keypaint
    steps: int
    images: list[dict[str, str]] = field(default_factory=list)  # {"file", "sha256"} per training picture
    settings: dict[str, Any] = field(default_factory=dict)  # rank, learning rate, resolution, ...
    seconds: float = 0.0  # training time
    device: str = ""
    version: str = ""  # keypaint version

    def to_header(self) -> dict[str, str]:
        return {KEY: json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)}

    @classmethod
    def from_header(cls, metadata: dict[str, str]) -> FinetuneInfo | None:
        """The info in a header, or None when the file was not made by `keypaint finetune`."""
        raw = metadata.get(KEY)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        known = cls.__dataclass_fields__
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError:
            return None

    @property
    def base_short(self) -> str:
        return self.base_sha256[:10]


def lora_header(info: FinetuneInfo, kind: ModelKind, rank: int, alpha: float) -> dict[str, str]:
    """`info` plus the kohya and modelspec keys LoRA browsers read."""
    settings = info.settings
    return {
        **info.to_header(),
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": f"{alpha:g}",
        "ss_base_model_version": BASE_VERSION[kind],
        "ss_sd_model_name": info.base_model,
        "ss_new_sd_model_hash": info.base_sha256,
        "ss_output_name": info.token,
        "ss_max_train_steps": str(info.steps),
        "ss_num_train_images": str(len(info.images)),
        "ss_learning_rate": str(settings.get("lr", "")),
        "ss_resolution": f"({settings.get('resolution', '')}, {settings.get('resolution', '')})",
        "ss_training_comment": f"keypaint finetune --method {info.method} --token {info.token}",
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": f"{ARCHITECTURE[kind]}/lora",
        "modelspec.implementation": "diffusers",
        "modelspec.title": info.token,
    }


def embedding_header(info: FinetuneInfo, kind: ModelKind) -> dict[str, str]:
    return {
        **info.to_header(),
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.title": info.token,
        "modelspec.architecture": f"{ARCHITECTURE[kind]}/textual-inversion",
    }


def kind_of_base_version(version: str | None) -> ModelKind | None:
    """The model family a foreign LoRA's `ss_base_model_version` names, if it names one we know."""
    if not version:
        return None
    if version.startswith("sdxl"):
        return ModelKind.SDXL
    if version.startswith("sd_v2"):
        return ModelKind.SD2
    if version.startswith("sd_v1"):
        return ModelKind.SD1
    if version.startswith("keypaint"):
        return ModelKind.KEYPAINT
    if version.startswith("flux"):
        return ModelKind.FLUX
    if version.startswith("sd3"):
        return ModelKind.SD3
    return None


def model_fingerprint(model: LoadedModel) -> str:
    """The hash that identifies a base model: its file hash, or for a model built in memory a hash of its
    U-Net weights (LoRA layers left out, so a model under training keeps its fingerprint)."""
    if model.sha256:
        return model.sha256
    digest = hashlib.sha256()
    state = model.denoiser.state_dict()
    weights = {k.replace(".base_layer", ""): v for k, v in state.items() if "lora_" not in k}
    for name in sorted(weights):
        digest.update(name.encode())
        digest.update(weights[name].detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
