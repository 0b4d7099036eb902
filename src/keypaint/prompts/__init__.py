"""Prompts: A1111 emphasis syntax and chunking, turned into text-encoder embeddings.

The encoding half needs PyTorch; it is imported on first use, so the parser, chunking and vocabulary stay
light (the frozen CPU path paints without importing PyTorch at all).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keypaint.keywords.syntax import BREAK, Fragment, keywords, parse_prompt_attention

if TYPE_CHECKING:
    from keypaint.prompts.encode import PromptEmbeddings, encode_plain, encode_prompts, token_count

_ENCODE = ("PromptEmbeddings", "encode_plain", "encode_prompts", "token_count")

__all__ = [
    "BREAK",
    "Fragment",
    "PromptEmbeddings",
    "encode_plain",
    "encode_prompts",
    "keywords",
    "parse_prompt_attention",
    "token_count",
]


def __getattr__(name: str) -> Any:
    if name in _ENCODE:
        from keypaint.prompts import encode

        return getattr(encode, name)
    raise AttributeError(f"module 'keypaint.prompts' has no attribute {name!r}")
