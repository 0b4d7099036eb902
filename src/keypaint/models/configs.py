"""The diffusers configs keypaint ships for single-file checkpoints, and loaders for their small parts.

`configs/<name>/` is laid out like the hub repo it copies (model_index.json, unet/, vae/, text_encoder/,
scheduler/, tokenizer/ ...), holding only JSON, so converting a downloaded checkpoint never needs the hub.
The CLIP BPE files (1.5 MB) ship once, in `configs/clip_tokenizer/`; a tokenizer folder that has only a
`tokenizer_config.json` is built from those shared files with its own special tokens ("!" pads SD 2.x
and SDXL's second tokenizer, `<|endoftext|>` pads SD 1.x). SD3's and Flux's T5 tokenizer (google's
T5 v1.1 SentencePiece vocabulary, Apache-2.0, as `tokenizer.json`) ships once in `configs/t5_tokenizer/`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import diffusers
from diffusers import SchedulerMixin
from transformers import AutoTokenizer, CLIPTokenizer, PreTrainedTokenizerBase, T5TokenizerFast

from keypaint.errors import ModelError

CONFIGS_DIR = Path(__file__).parent / "configs"
CLIP_TOKENIZER_DIR = CONFIGS_DIR / "clip_tokenizer"
T5_TOKENIZER_FILE = CONFIGS_DIR / "t5_tokenizer" / "tokenizer.json"
SHIPPED_CONFIGS = (
    "sd15", "sd15-inpainting", "sd2-base", "sd21", "sd2-inpainting", "sdxl-base", "sdxl-inpainting",
    "sd3-medium", "sd35-medium", "sd35-large", "flux-dev", "flux-schnell",
)


def shipped_config(name: str) -> Path:
    """The folder of shipped config `name` (one of SHIPPED_CONFIGS)."""
    if name not in SHIPPED_CONFIGS:
        raise ModelError(f"no shipped config named {name!r}; known: {', '.join(SHIPPED_CONFIGS)}")
    return CONFIGS_DIR / name


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read config {path} ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ModelError(f"config {path} is not a JSON object")
    return data


def load_tokenizer(config_dir: Path, subfolder: str = "tokenizer") -> PreTrainedTokenizerBase:
    """The tokenizer in `config_dir/subfolder`: its own vocabulary files, else the shared CLIP BPE ones."""
    folder = config_dir / subfolder
    if any((folder / f).is_file() for f in ("tokenizer.json", "vocab.json", "vocab.txt")):
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    cfg = read_json(folder / "tokenizer_config.json")
    names = ("bos_token", "eos_token", "pad_token", "unk_token")
    special = {k: cfg[k] for k in names if isinstance(cfg.get(k), str)}
    if cfg.get("tokenizer_class") == "T5TokenizerFast":
        return T5TokenizerFast(tokenizer_file=str(T5_TOKENIZER_FILE), extra_ids=0,
                               model_max_length=int(cfg.get("model_max_length", 512)), **special)
    return CLIPTokenizer(
        str(CLIP_TOKENIZER_DIR / "vocab.json"), str(CLIP_TOKENIZER_DIR / "merges.txt"),
        model_max_length=int(cfg.get("model_max_length", 77)), **special,
    )


def load_scheduler(config_dir: Path, prediction_type: str | None = None) -> SchedulerMixin:
    """The scheduler `config_dir/scheduler` names, optionally with its prediction type replaced."""
    cfg = read_json(config_dir / "scheduler" / "scheduler_config.json")
    cls = getattr(diffusers, str(cfg.get("_class_name")), None)
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise ModelError(f"{config_dir.name}: unknown scheduler class {cfg.get('_class_name')!r}")
    if prediction_type is not None:
        cfg["prediction_type"] = prediction_type
    return cls.from_config(cfg)
