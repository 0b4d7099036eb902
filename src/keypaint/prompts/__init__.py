"""Prompts: A1111 emphasis syntax and chunking, turned into text-encoder embeddings."""

from keypaint.prompts.encode import PromptEmbeddings, encode_plain, encode_prompts, token_count
from keypaint.prompts.parser import BREAK, Fragment, keywords, parse_prompt_attention

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
