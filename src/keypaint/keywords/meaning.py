"""Keywords by meaning: a word the model was never trained with finds the nearest label it was.

A person types "cheeseburger"; the built-in model learned "hamburger". Each keyword that is not a known
label or tag is embedded as a sentence (all-MiniLM-L6-v2, the model's own text encoder: token states
mean-pooled over the attention mask and L2-normalised, as sentence-transformers computes them) and compared by
cosine similarity with precomputed embeddings of every label (`meaning.safetensors` beside the weights,
built by `python -m keypaint.builtin.pack meaning`). Above the measured threshold the keyword brings the
nearest label and that label's tags, the way an exact label does (`keywords.vocabulary`).

Both sides are embedded inside one template ("a picture of a {}"): measured on the synonym probe set
(docs/model-card.md), it puts the intended label first for 0.60 of the words against 0.50 for bare words.
Words that say how a picture should look rather than what it shows ("masterpiece", "photo", "icon") are
never matched (`GENERIC`), nor are style keywords ("noto style") or keywords with emphasis or LoRA syntax.
This module is numpy only: the full path and the frozen ONNX path each hand it their own `Embed`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from keypaint.errors import ModelError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

FORMAT = "keypaint-meaning/1"
FILENAME = "meaning.safetensors"
TEMPLATE = "a picture of a {}"
THRESHOLD = 0.6  # cosine similarity; docs/model-card.md gives the probe and negative sets' rates around it
ENCODER = "all-MiniLM-L6-v2 (mean pooling, normalised)"

Embed = Callable[[list[str]], np.ndarray]  # texts -> (n, dim) float32 unit rows

# Words about the look of a picture, its quality or its medium: prompts carry them, they name no thing.
GENERIC = frozenset((
    "masterpiece", "best quality", "high quality", "highly detailed", "detailed", "ultra detailed", "4k",
    "8k", "hd", "hdr", "uhd", "high resolution", "sharp focus", "beautiful", "cute", "pretty", "lovely",
    "gorgeous", "stunning", "amazing", "awesome", "simple", "minimal", "minimalist", "flat", "colorful",
    "colourful", "vibrant", "bright", "dark", "small", "big", "large", "tiny", "huge", "photo",
    "photograph", "photorealistic", "realistic", "hyperrealistic", "picture", "image", "illustration",
    "drawing", "painting", "art", "artwork", "digital art", "vector", "vector art", "clip art", "clipart",
    "icon", "icons", "emoji", "sticker", "logo", "symbol", "cartoon", "anime", "render", "3d", "2d",
    "trending on artstation", "artstation", "award winning", "professional", "studio", "centered",
    "white background", "transparent background", "no background", "solid background", "isolated",
))
_SYNTAX = re.compile(r"[()\[\]<>:\\]|\bBREAK\b")


def _key(word: str) -> str:
    return " ".join(word.lower().split())


@dataclass(frozen=True)
class Match:
    """A keyword matched to a label by meaning, with the cosine similarity that matched it."""

    keyword: str
    label: str
    score: float

    def __str__(self) -> str:
        return f"{self.keyword} -> {self.label}"


def eligible(keyword: str, known: Iterable[str] = ()) -> bool:
    """Whether `keyword` is looked up by meaning: plain words naming a thing, not already known."""
    key = _key(keyword)
    return (bool(re.search(r"[a-z]", key)) and not _SYNTAX.search(keyword) and key not in GENERIC
            and not key.endswith(" style") and key not in known)


@dataclass(frozen=True, eq=False)
class MeaningIndex:
    """Unit-length embeddings of entries (labels, icon names), each standing for a vocabulary label."""

    entries: tuple[str, ...]  # the text embedded for each row (inside TEMPLATE)
    labels: tuple[str, ...]  # the vocabulary label each row stands for
    vectors: np.ndarray  # (rows, dim) float32, unit rows
    threshold: float = THRESHOLD
    template: str = TEMPLATE
    encoder: str = ENCODER

    @classmethod
    def build(cls, entries: Sequence[str], labels: Sequence[str], embed: Embed,
              threshold: float = THRESHOLD, template: str = TEMPLATE) -> MeaningIndex:
        if len(entries) != len(labels) or not entries:
            raise ModelError("a meaning index needs one label for each of at least one entry")
        vectors = embed([template.format(e) for e in entries]).astype(np.float32)
        return cls(tuple(entries), tuple(labels), vectors, threshold, template)

    def match(self, keywords: Sequence[str], embed: Embed) -> list[Match | None]:
        """The nearest label of each keyword, or None where the best similarity is under the threshold."""
        if not keywords:
            return []
        queries = embed([self.template.format(k) for k in keywords]).astype(np.float32)
        scores = queries @ self.vectors.T
        best = scores.argmax(axis=1)
        return [Match(k, self.labels[j], float(scores[i, j])) if scores[i, j] >= self.threshold else None
                for i, (k, j) in enumerate(zip(keywords, best, strict=True))]

    def save(self, path: Path) -> None:
        """int8 rows (x127; cosine error under 0.01) with entries, labels and settings in the header."""
        from safetensors.numpy import save_file

        q = np.clip(np.round(self.vectors * 127), -127, 127).astype(np.int8)
        meta = {"format": FORMAT, "threshold": str(self.threshold), "template": self.template,
                "encoder": self.encoder, "entries": json.dumps(list(self.entries), ensure_ascii=False),
                "labels": json.dumps(list(self.labels), ensure_ascii=False)}
        tmp = path.with_name(path.name + ".tmp")
        save_file({"vectors": q}, str(tmp), metadata=meta)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> MeaningIndex:
        from safetensors import SafetensorError, safe_open

        try:  # safetensors checks the header against the file's size before reading any tensor
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                if meta.get("format") != FORMAT:
                    raise ModelError(f"{path}: not a meaning index (expected format {FORMAT!r})")
                q = f.get_tensor("vectors")
            entries, labels = json.loads(meta["entries"]), json.loads(meta["labels"])
            threshold = float(meta["threshold"])
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable meaning index ({exc})") from exc
        if q.ndim != 2 or not len(entries) == len(labels) == q.shape[0]:
            raise ModelError(f"{path}: {q.shape[0]} vectors for {len(entries)} entries")
        vectors = q.astype(np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
        return cls(tuple(entries), tuple(labels), vectors, threshold, meta.get("template", TEMPLATE),
                   meta.get("encoder", ENCODER))


def mean_pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sentence embeddings from token states (n, tokens, dim) and the mask: their mean, at unit length."""
    m = mask[..., None].astype(np.float32)
    pooled = (hidden.astype(np.float32) * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def sentence_embeddings(tokenizer: PreTrainedTokenizerBase, text_encoder: PreTrainedModel, texts: list[str],
                        batch_size: int = 512) -> np.ndarray:
    """Texts -> unit-length mean-pooled token states (float32 numpy), as sentence-transformers embeds them."""
    import torch

    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                          max_length=tokenizer.model_max_length, return_tensors="pt")
        with torch.inference_mode():
            hidden = text_encoder(input_ids=batch["input_ids"].to(text_encoder.device),
                                  attention_mask=batch["attention_mask"].to(text_encoder.device))[0]
        out.append(mean_pooled(hidden.float().cpu().numpy(), batch["attention_mask"].numpy()))
    return np.concatenate(out) if out else np.zeros((0, int(text_encoder.config.hidden_size)), np.float32)
