"""T2I-Adapters as control units: what differs from a ControlNet, in one place.

A T2I-Adapter (Mou et al. 2023) reads the control map once per picture and adds its features to the
U-Net's encoder at every step (diffusers' `StableDiffusionAdapterPipeline`), so it costs almost nothing per
step. The built-in model ships one, `keypaint-sketch` (`keypaint train controlnet`), as a diffusers config
beside compact int8 weights (`models.compact`); a folder in `<home>/controlnet` may hold one too.

diffusers' adapter pipeline runs one adapter over all steps, for txt2img, with no control mode: a unit asking
for more is refused before anything loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from keypaint.errors import InvalidParams, ModelError
from keypaint.models.compact import FILENAME as COMPACT
from keypaint.models.configs import read_json

if TYPE_CHECKING:
    import torch

    from keypaint.core.control import ControlUnit
    from keypaint.models.loaded import LoadedModel

ADAPTER_CLASS = "T2IAdapter"


def is_adapter(folder: Path) -> bool:
    """Whether a control model's path is a diffusers T2I-Adapter folder."""
    return folder.is_dir() and read_json(folder / "config.json").get("_class_name") == ADAPTER_CLASS


def check_adapter_fits(name: str, folder: Path, model: LoadedModel) -> None:
    """ModelError unless the adapter's feature widths and downscale are the U-Net's block widths and the
    VAE's factor (its features are added to those blocks' outputs)."""
    config, unet = read_json(folder / "config.json"), model.pipe.unet.config
    widths, factor = list(config.get("channels", [])), int(config.get("downscale_factor", 8))
    if widths != list(unet.block_out_channels) or factor != model.pipe.vae_scale_factor:
        raise ModelError(f"T2I-Adapter {name} is for a U-Net with blocks {widths} (1/{factor} latents), but "
                         f"{model.name} has blocks {list(unet.block_out_channels)}")
    # diffusers adds the features inside cross-attention blocks (before their downsampler) and after the
    # others: only a plain block at the end sees them at the adapter's resolution
    if any("CrossAttn" not in block for block in unet.down_block_types[:-1]):
        raise ModelError(f"T2I-Adapter {name}: {model.name}'s U-Net has a plain down block before a "
                         "cross-attention one, where diffusers adds adapter features at the wrong size")


def check_adapter_units(units: tuple[ControlUnit, ...], adapters: list[bool], mode: str) -> None:
    """InvalidParams for what diffusers' adapter pipeline cannot run: an adapter with other units, outside
    txt2img, over part of the steps, or in guess mode."""
    if not any(adapters):
        return
    names = ", ".join(u.model for u, a in zip(units, adapters, strict=True) if a)
    if len(units) > 1:
        raise InvalidParams("control", f"the T2I-Adapter {names} steers alone; give one control unit")
    unit = units[0]
    if mode != "txt2img":
        raise InvalidParams("control", f"the T2I-Adapter {names} steers txt2img only, not {mode}")
    if unit.start != 0.0 or unit.end != 1.0:
        raise InvalidParams("control_start", f"the T2I-Adapter {names} steers every step: leave start 0 "
                            "and end 1")
    if unit.guess_mode:
        raise InvalidParams("control_mode", f"the T2I-Adapter {names} has no control mode")


def load_control_folder(folder: Path, dtype: torch.dtype) -> Any:
    """A ControlNet or T2I-Adapter from a diffusers folder: compact weights expanded, or plain files."""
    import torch
    from diffusers import ControlNetModel, T2IAdapter

    from keypaint.models.compact import load_compact

    cls = T2IAdapter if is_adapter(folder) else ControlNetModel
    if not (folder / COMPACT).is_file():
        return cls.from_pretrained(folder, torch_dtype=dtype, local_files_only=True)
    state = load_compact(folder / COMPACT, dtype)
    with torch.device("meta"):  # every tensor comes from the file
        net = cls.from_config(cls.load_config(str(folder)))
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelError(f"{folder / COMPACT}: the weights do not fit its config.json: {exc}") from exc
    return net
