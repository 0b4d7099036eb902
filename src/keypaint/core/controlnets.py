"""ControlNets by name in `<home>/controlnet`, checked against the model and loaded once per Painter.

A ControlNet is a diffusers folder (`config.json` + weights) or a single `.safetensors` file as people
share them: sd-webui-controlnet's layouts (`control_model.`-prefixed or plain `input_blocks.`/`zero_convs.`
keys) or diffusers' keys. A single file is loaded with diffusers' `ControlNetModel.from_single_file` and a
config folder written from the one keypaint ships for its family (`models/configs/controlnet-*`), with the
loaded U-Net's own block layout on top: a ControlNet copies its U-Net's encoder, so the model says what
shape it has; nothing is ever fetched from a hub.

A T2I-Adapter folder (`core.t2i_adapters`) is a control model too; the built-in model's own,
`keypaint-sketch`, is found in the folder of shipped controls the Painter is handed (`BuiltinModel.controls`)
when `<home>/controlnet` has none of that name.

A ControlNet made for another family (SD 1.x on SDXL, say) is refused from its header alone, before any
weights load: the width of its cross-attention context, its SDXL size embedding and its first block width
must match the model's U-Net.
"""

from __future__ import annotations

import json
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keypaint.core.adapters import is_name
from keypaint.core.control import ControlUnit, infotext_value, strip_hash
from keypaint.core.t2i_adapters import (
    check_adapter_fits,
    check_adapter_units,
    is_adapter,
    load_control_folder,
)
from keypaint.errors import ModelError
from keypaint.models.checkpoint_files import load_safetensors, read_safetensors_header
from keypaint.models.compact import FILENAME as COMPACT
from keypaint.models.configs import CONFIGS_DIR, read_json
from keypaint.models.registry import keypaint_home

if TYPE_CHECKING:
    import torch
    from diffusers import ControlNetModel
    from PIL import Image

    from keypaint.core.control_maps import ControlMap
    from keypaint.models.loaded import LoadedModel

PREFIX = "control_model."  # sd-webui-controlnet's full-model layout
WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors", COMPACT)
# ControlNetModel's arguments that copy the U-Net's encoder (what `ControlNetModel.from_unet` copies)
STRUCTURE = ("act_fn", "addition_embed_type", "addition_embed_type_num_heads", "addition_time_embed_dim",
             "attention_head_dim", "block_out_channels", "class_embed_type", "cross_attention_dim",
             "down_block_types", "downsample_padding", "encoder_hid_dim", "encoder_hid_dim_type",
             "flip_sin_to_cos", "freq_shift", "layers_per_block", "mid_block_scale_factor", "mid_block_type",
             "norm_eps", "norm_num_groups", "num_attention_heads", "num_class_embeds", "only_cross_attention",
             "projection_class_embeddings_input_dim", "resnet_time_scale_shift",
             "transformer_layers_per_block", "upcast_attention", "use_linear_projection")


def controlnet_dir(home: Path | None = None) -> Path:
    return (home or keypaint_home()) / "controlnet"


@dataclass(frozen=True)
class ControlNetFile:
    """A ControlNet in the folder: `path` is a `.safetensors` file or a diffusers folder."""

    name: str
    path: Path

    @property
    def weights(self) -> Path:
        """The file holding the weights (a folder's diffusers weights file)."""
        if self.path.is_file():
            return self.path
        for name in WEIGHTS:
            if (self.path / name).is_file():
                return self.path / name
        raise ModelError(f"ControlNet {self.name}: {self.path} has no {WEIGHTS[0]}")

    @property
    def stamp(self) -> tuple[str, int, int]:
        st = self.weights.stat()
        return str(self.weights.resolve()), st.st_size, st.st_mtime_ns


def list_controlnets(home: Path | None = None, shipped: Path | None = None) -> list[ControlNetFile]:
    """The ControlNets in `<home>/controlnet`, by name, then the shipped ones (`shipped`) of other names."""
    folder = controlnet_dir(home)
    found = []
    if folder.is_dir():
        found = [ControlNetFile(p.stem, p) for p in folder.glob("*.safetensors") if p.is_file()]
        found += [ControlNetFile(p.name, p) for p in folder.iterdir() if (p / "config.json").is_file()]
    taken = {f.name for f in found}
    if shipped is not None and shipped.is_dir():
        found += [ControlNetFile(p.name, p) for p in shipped.iterdir()
                  if (p / "config.json").is_file() and p.name not in taken]
    return sorted(found, key=lambda f: f.name.lower())


def find_controlnet(name: str, home: Path | None = None, shipped: Path | None = None) -> ControlNetFile:
    """The ControlNet called `name` (A1111's "NAME [hash]" too); ModelError listing those there are."""
    wanted = strip_hash(name)
    available = list_controlnets(home, shipped)
    if is_name(wanted):
        for candidate in available:
            if candidate.name == wanted:
                return candidate
    names = ", ".join(c.name for c in available) or "none"
    raise ModelError(f"unknown ControlNet {name!r}; {controlnet_dir(home)} holds: {names}")


@dataclass(frozen=True)
class Architecture:
    """What must match between a ControlNet and the model's U-Net."""

    context: int | None  # cross-attention context width: 768 SD 1.x, 1024 SD 2.x, 2048 SDXL
    xl: bool  # SDXL's size and pooled-text embedding
    channels: int | None  # the first block's width

    def describe(self) -> str:
        family = {(768, False): "SD 1.x", (1024, False): "SD 2.x", (2048, True): "SDXL"}.get(
            (self.context or 0, self.xl))
        xl = " (XL)" if self.xl else ""
        return family or f"a {self.context}-d context{xl}, {self.channels}-channel U-Net"

    @classmethod
    def of_config(cls, config: dict[str, Any]) -> Architecture:
        blocks = config.get("block_out_channels") or [None]
        return cls(config.get("cross_attention_dim"), config.get("addition_embed_type") == "text_time",
                   blocks[0])


def architecture(file: ControlNetFile) -> Architecture:
    """A ControlNet's architecture from its config or its safetensors header (no weights read)."""
    if file.path.is_dir():
        return Architecture.of_config(read_json(file.path / "config.json"))
    header = read_safetensors_header(file.path)
    keys = {k.removeprefix(PREFIX): info.shape for k, info in header.tensors.items()}
    if not any(k.startswith(("zero_convs.", "controlnet_down_blocks.")) for k in keys):
        raise ModelError(f"{file.path.name}: not a ControlNet (no zero_convs or controlnet_down_blocks)")
    context = next((shape[1] for k, shape in keys.items() if k.endswith("attn2.to_k.weight")), None)
    first = keys.get("input_blocks.0.0.weight") or keys.get("conv_in.weight")
    xl = any(k.startswith(("label_emb.", "add_embedding.")) for k in keys)
    return Architecture(context, xl, first[0] if first else None)


def check_fits(file: ControlNetFile, model: LoadedModel) -> None:
    """ModelError unless the ControlNet was made for the model's family (header and configs only)."""
    if is_adapter(file.path):
        check_adapter_fits(file.name, file.path, model)
        return
    own, model_arch = architecture(file), Architecture.of_config(dict(model.pipe.unet.config))
    if own != model_arch:
        raise ModelError(f"ControlNet {file.name} is for {own.describe()} models, but the model loaded is "
                         f"{model.name} ({model.kind.value}: {model_arch.describe()})")


def single_file_config(unet_config: dict[str, Any], xl: bool) -> dict[str, Any]:
    """The shipped config of the family, with the U-Net's encoder layout on top."""
    family = "sdxl" if xl else "sd2" if unet_config.get("cross_attention_dim") == 1024 else "sd15"
    config = read_json(CONFIGS_DIR / f"controlnet-{family}" / "config.json")
    config.update({k: unet_config[k] for k in STRUCTURE if k in unet_config})
    return config


def load_controlnet(file: ControlNetFile, model: LoadedModel) -> ControlNetModel:
    """The ControlNet's (or T2I-Adapter's) weights on the model's device and dtype (check_fits first)."""
    unet = model.pipe.unet
    try:
        if file.path.is_dir():
            net = load_control_folder(file.path, unet.dtype)
        else:
            net = _from_single_file(file, dict(unet.config), unet.dtype)
    except (ValueError, RuntimeError, KeyError, TypeError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"ControlNet {file.name} does not load for {model.name}: {reason}") from None
    return (net if net.device == unet.device else net.to(unet.device)).eval()


def _from_single_file(file: ControlNetFile, unet_config: dict[str, Any], dtype: torch.dtype
                      ) -> ControlNetModel:
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    state = {k.removeprefix(PREFIX): v for k, v in load_safetensors(file.path).items()}
    config = single_file_config(unet_config, any(k.startswith("label_emb.") for k in state))
    if "time_embedding.linear_1.weight" not in state:  # sd-webui-controlnet's layout: diffusers converts it
        converted = convert_controlnet_checkpoint(state, config)
        # diffusers 0.42 leaves SDXL's size embedding (label_emb) behind: same layers, other names
        for index, part in ((0, "linear_1"), (2, "linear_2")):
            for kind in ("weight", "bias"):
                if f"label_emb.0.{index}.{kind}" in state:
                    converted[f"add_embedding.{part}.{kind}"] = state[f"label_emb.0.{index}.{kind}"]
        state = converted
    with tempfile.TemporaryDirectory(prefix="keypaint-controlnet-") as folder:
        (Path(folder) / "config.json").write_text(json.dumps(config), encoding="utf-8")
        return ControlNetModel.from_single_file(state, config=folder, torch_dtype=dtype,
                                                local_files_only=True)


class ControlNets:
    """The ControlNets loaded for one model, by file (a few kept, least recently used dropped)."""

    def __init__(self, model: LoadedModel, home: Path | None = None, max_loaded: int = 4,
                 shipped: Path | None = None) -> None:
        self.model = model
        self.home = home
        self.shipped = shipped  # the shipped control models (the built-in model's keypaint-sketch)
        self.max_loaded = max_loaded
        self._loaded: OrderedDict[tuple[str, int, int], ControlNetModel] = OrderedDict()

    def check(self, units: tuple[ControlUnit, ...]) -> list[ControlNetFile]:
        """Each unit's ControlNet found and made for this model; nothing loaded yet."""
        files = [find_controlnet(unit.model, self.home, self.shipped) for unit in units]
        for file in files:
            check_fits(file, self.model)
        return files

    def load(self, units: tuple[ControlUnit, ...]) -> list[ControlNetModel]:
        nets = []
        for file in self.check(units):
            stamp = file.stamp
            if stamp not in self._loaded:
                self._loaded[stamp] = load_controlnet(file, self.model)
                while len(self._loaded) > self.max_loaded:
                    self._loaded.popitem(last=False)
            self._loaded.move_to_end(stamp)
            nets.append(self._loaded[stamp])
        return nets


@dataclass
class PreparedControl:
    """A request's units with their ControlNets loaded and their maps made, ready for a pipeline."""

    units: tuple[ControlUnit, ...]
    nets: list[ControlNetModel]
    maps: list[ControlMap]
    labels: list[str]  # "NAME [hash]" as sd-webui-controlnet names a model

    @property
    def is_adapter(self) -> bool:
        """A T2I-Adapter (alone: `check_adapter_units`), run by diffusers' adapter pipeline."""
        from diffusers import T2IAdapter

        return any(isinstance(net, T2IAdapter) for net in self.nets)

    @property
    def controlnet(self) -> Any:
        """One ControlNet, or diffusers' MultiControlNetModel summing several."""
        if len(self.nets) == 1:
            return self.nets[0]
        from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

        return MultiControlNetModel(self.nets)

    def pipeline_kwargs(self, mode: str, batch: int = 1) -> dict[str, Any]:
        """The control arguments of diffusers' ControlNet pipelines (txt2img takes the map as `image`), or
        of its adapter pipeline (the map once per picture of the batch)."""
        if self.is_adapter:
            return {"image": [self.maps[0].conditioning] * batch,
                    "adapter_conditioning_scale": self.units[0].weight}

        def one_or_all(values: list[Any]) -> Any:
            return values[0] if len(values) == 1 else values

        return {
            "image" if mode == "txt2img" else "control_image":
                one_or_all([m.conditioning for m in self.maps]),
            "controlnet_conditioning_scale": one_or_all([u.weight for u in self.units]),
            "control_guidance_start": one_or_all([u.start for u in self.units]),
            "control_guidance_end": one_or_all([u.end for u in self.units]),
            "guess_mode": self.units[0].guess_mode,
        }

    def infotext(self) -> dict[str, str]:
        return {f"ControlNet {i}": infotext_value(unit, label)
                for i, (unit, label) in enumerate(zip(self.units, self.labels, strict=True))}


def prepare_control(controlnets: ControlNets, units: tuple[ControlUnit, ...], width: int, height: int,
                    mask: Image.Image | None, mode: str = "txt2img") -> PreparedControl:
    """Load the units' ControlNets and make their maps at the picture's size."""
    from keypaint.core.control_maps import control_map
    from keypaint.models.hashing import file_sha256

    files = controlnets.check(units)
    check_adapter_units(units, [is_adapter(f.path) for f in files], mode)
    maps = [control_map(unit, width, height, mask) for unit in units]  # a bad image fails before loading
    nets = controlnets.load(units)
    labels = [f"{f.name} [{file_sha256(f.weights, home=controlnets.home)[:8]}]" for f in files]
    return PreparedControl(units, nets, maps, labels)
