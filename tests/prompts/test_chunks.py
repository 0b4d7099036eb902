"""Chunking with the CLIP tokenizer keypaint ships: A1111's 75-token chunks, comma backtrack and BREAK."""

from __future__ import annotations

import pytest
from transformers import CLIPTokenizer

from keypaint.models.tiny import clip_tokenizer
from keypaint.prompts.chunks import SpecialTokens, tokenize_chunks

START, END, COMMA, CAT, DOG = 49406, 49407, 267, 2368, 1929


@pytest.fixture(scope="module")
def tok() -> CLIPTokenizer:
    return clip_tokenizer()


def body(chunk_ids: list[int]) -> list[int]:
    """The prompt tokens of a chunk: between the start token and the first end token."""
    assert chunk_ids[0] == START
    return chunk_ids[1 : chunk_ids.index(END)]


def test_shipped_tokenizer_gives_reference_ids(tok: CLIPTokenizer) -> None:
    assert tok("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    chunks, count = tokenize_chunks(tok, "a photo of a cat")
    assert len(chunks) == 1 and count == 5
    assert chunks[0].ids == [49406, 320, 1125, 539, 320, 2368] + [49407] * 71
    assert chunks[0].length == 7


def test_special_tokens_are_read_from_the_tokenizer(tok: CLIPTokenizer) -> None:
    assert SpecialTokens.of(tok) == SpecialTokens(start=START, end=END, pad=END, comma=COMMA, window=77)
    assert SpecialTokens.of(clip_tokenizer("!")).pad == 0  # SD 2.x / SDXL's second tokenizer pad with "!"


def test_sd2_pads_after_the_end_token() -> None:
    (chunk,), _ = tokenize_chunks(clip_tokenizer("!"), "a cat")
    assert chunk.ids == [START, 320, CAT, END] + [0] * 73


def test_200_tokens_give_3_chunks_of_77(tok: CLIPTokenizer) -> None:
    prompt = " ".join(["cat", "dog"] * 100)  # no commas: plain 75-token cuts
    chunks, count = tokenize_chunks(tok, prompt)
    assert [len(c.ids) for c in chunks] == [77, 77, 77]
    assert [c.length for c in chunks] == [77, 77, 52]
    assert count == 200
    assert [t for c in chunks for t in body(c.ids)] == [CAT, DOG] * 100  # nothing lost, nothing cut


def test_comma_backtrack_moves_the_tail_to_the_next_chunk(tok: CLIPTokenizer) -> None:
    chunks, _ = tokenize_chunks(tok, "cat " * 70 + ", " + "dog " * 10)
    assert body(chunks[0].ids) == [CAT] * 70 + [COMMA]  # cut after the comma, 5 tokens from the end
    assert body(chunks[1].ids) == [DOG] * 10


def test_no_backtrack_when_the_comma_is_far_from_the_end(tok: CLIPTokenizer) -> None:
    chunks, _ = tokenize_chunks(tok, "cat " * 50 + ", " + "dog " * 40)  # comma 25 tokens from the end
    assert body(chunks[0].ids) == [CAT] * 50 + [COMMA] + [DOG] * 24
    assert body(chunks[1].ids) == [DOG] * 16


def test_break_starts_a_new_chunk(tok: CLIPTokenizer) -> None:
    chunks, count = tokenize_chunks(tok, "a cat BREAK a dog")
    assert [body(c.ids) for c in chunks] == [[320, CAT], [320, DOG]]
    assert count == 75 + 2  # A1111 counts a closed chunk as full


def test_leading_break_gives_an_empty_first_chunk(tok: CLIPTokenizer) -> None:
    chunks, _ = tokenize_chunks(tok, "BREAK cat")
    assert [body(c.ids) for c in chunks] == [[], [CAT]]


def test_empty_prompt_is_one_empty_chunk(tok: CLIPTokenizer) -> None:
    chunks, count = tokenize_chunks(tok, "")
    assert [c.ids for c in chunks] == [[START] + [END] * 76] and count == 0


def test_weights_follow_their_tokens(tok: CLIPTokenizer) -> None:
    (chunk,), _ = tokenize_chunks(tok, "a (cat:1.5) [dog]")
    assert chunk.weights[:5] == pytest.approx([1.0, 1.0, 1.5, 1 / 1.1, 1.0])  # start, a, cat, dog, end
    assert set(chunk.weights[5:]) == {1.0}


def test_backtracked_tokens_keep_their_weights(tok: CLIPTokenizer) -> None:
    chunks, _ = tokenize_chunks(tok, "cat " * 70 + ", " + "(dog:2) " * 6)
    assert body(chunks[0].ids) == [CAT] * 70 + [COMMA]
    assert body(chunks[1].ids) == [DOG] * 6  # four moved back from the full chunk, two added after
    assert chunks[1].weights[:8] == [1.0] + [2.0] * 6 + [1.0]
