"""A1111's emphasis syntax: `(word)`, `((word))`, `[word]`, `(word:1.3)`, escapes and `BREAK`.

Prompts written for AUTOMATIC1111's web UI must mean the same here, so `parse_prompt_attention` follows
`modules/prompt_parser.py::parse_prompt_attention` of stable-diffusion-webui step by step, including how it
treats unbalanced brackets: an unclosed `(` or `[` still applies to everything after it, a stray `)` or `]`
is plain text, and neighbouring pieces of equal weight are merged.

One deliberate difference: A1111 stores `BREAK` as a piece of weight -1 that enclosing brackets then
multiply, so `(a BREAK b)` sends the word "BREAK" with weight -1.1 to the text encoder. Here `BREAK` is a
separate marker that brackets never touch, so it always starts a new chunk.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from keypaint.errors import InvalidParams

ROUND_MULTIPLIER = 1.1  # (word)
SQUARE_MULTIPLIER = 1 / 1.1  # [word]

# Escapes, brackets, an explicit ":weight)" closing, runs of plain text, a lone colon (A1111's re_attention).
_ATTENTION = re.compile(
    r"""
    \\\( | \\\) | \\\[ | \\\] | \\\\ | \\
    | \( | \[
    | :(?P<weight>[+-]?[.\d]+)\)
    | \) | \]
    | [^\\()\[\]:]+
    | :
    """,
    re.X,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


class Fragment(NamedTuple):
    """A run of prompt text and the multiplier its tokens' embeddings get."""

    text: str
    weight: float


class Break:
    """The `BREAK` keyword: the tokens after it start a new chunk."""

    def __repr__(self) -> str:
        return "BREAK"


BREAK = Break()

Piece = Fragment | Break


def parse_prompt_attention(text: str) -> list[Piece]:
    """Split `text` into weighted fragments and `BREAK` markers, as A1111 does.

    "an (important) word" gives ("an ", 1.0), ("important", 1.1), (" word", 1.0).
    """
    pieces: list[list] = []  # [text, weight] lists, or BREAK; mutable so open brackets can rescale them
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply_from(start: int, multiplier: float) -> None:
        for piece in pieces[start:]:
            if piece is not BREAK:
                piece[1] *= multiplier

    for match in _ATTENTION.finditer(text):
        token, weight = match.group(0), match.group("weight")
        if token.startswith("\\"):
            pieces.append([token[1:], 1.0])
        elif token == "(":
            round_open.append(len(pieces))
        elif token == "[":
            square_open.append(len(pieces))
        elif weight is not None and round_open:
            multiply_from(round_open.pop(), _weight(token, weight))
        elif token == ")" and round_open:
            multiply_from(round_open.pop(), ROUND_MULTIPLIER)
        elif token == "]" and square_open:
            multiply_from(square_open.pop(), SQUARE_MULTIPLIER)
        else:
            for i, part in enumerate(_BREAK.split(token)):
                if i > 0:
                    pieces.append(BREAK)
                pieces.append([part, 1.0])

    # Unclosed brackets apply up to the end of the prompt.
    for start in round_open:
        multiply_from(start, ROUND_MULTIPLIER)
    for start in square_open:
        multiply_from(start, SQUARE_MULTIPLIER)

    if not pieces:
        pieces = [["", 1.0]]

    merged: list[Piece] = []
    for piece in pieces:
        if piece is BREAK:
            merged.append(BREAK)
        elif merged and isinstance(merged[-1], Fragment) and merged[-1].weight == piece[1]:
            merged[-1] = Fragment(merged[-1].text + piece[0], piece[1])
        else:
            merged.append(Fragment(piece[0], piece[1]))
    return merged


def _weight(token: str, number: str) -> float:
    try:
        return float(number)
    except ValueError:
        # A1111 crashes here with a bare ValueError; say what is wrong instead.
        raise InvalidParams("prompt", f"cannot read the weight in {token!r}") from None


def keywords(prompt: str) -> list[str]:
    """The comma-separated keywords of `prompt`, for UIs that show them as separate tags.

    Commas inside brackets (`(red, blue:1.2)`) or escaped (`\\,`) do not split; each keyword keeps its own
    emphasis syntax and loses surrounding whitespace; empty keywords are dropped.
    """
    result: list[str] = []
    current: list[str] = []
    depth = 0
    i = 0
    while i < len(prompt):
        char = prompt[i]
        if char == "\\" and i + 1 < len(prompt):
            current.append(prompt[i : i + 2])
            i += 2
            continue
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(depth - 1, 0)
        if char == "," and depth == 0:
            result.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    result.append("".join(current))
    return [keyword.strip() for keyword in result if keyword.strip()]
