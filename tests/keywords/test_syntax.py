"""The parser must read prompts exactly as A1111 does: its own docstring examples are the reference."""

from __future__ import annotations

import pytest

from keypaint.errors import InvalidParams
from keypaint.keywords.syntax import BREAK, Fragment, keywords, parse_prompt_attention


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [  # the examples in A1111's modules/prompt_parser.py::parse_prompt_attention, verbatim
        ("normal text", [("normal text", 1.0)]),
        ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
        ("(unbalanced", [("unbalanced", 1.1)]),
        ("\\(literal\\]", [("(literal]", 1.0)]),
        ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
        (
            "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            [
                ("a ", 1.0),
                ("house", 1.5730000000000004),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641000000000006),
                (".", 1.1),
            ],
        ),
    ],
)
def test_a1111_docstring_examples(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert parse_prompt_attention(prompt) == expected  # exact floats: same arithmetic in the same order


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("(word)", [("word", 1.1)]),
        ("((word))", [("word", 1.1 * 1.1)]),
        ("[word]", [("word", 1 / 1.1)]),
        ("[[word]]", [("word", 1 / 1.1 / 1.1)]),
        ("(word:1.3)", [("word", 1.3)]),
        ("(word: 1.3)", [("word: 1.3", 1.1)]),  # A1111 allows no space before the number
        ("(word:-0.5)", [("word", -0.5)]),
        ("(a (b:2) c:0.5)", [("a ", 0.5), ("b", 1.0), (" c", 0.5)]),
        ("[(word)]", [("word", 1.1 / 1.1)]),
        ("", [("", 1.0)]),
    ],
)
def test_emphasis(prompt: str, expected: list[tuple[str, float]]) -> None:
    got = parse_prompt_attention(prompt)
    assert [f.text for f in got] == [text for text, _ in expected]
    assert [f.weight for f in got] == pytest.approx([w for _, w in expected])


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a \\(b\\) c", [("a (b) c", 1.0)]),
        ("\\[x\\]", [("[x]", 1.0)]),
        ("back\\\\slash", [("back\\slash", 1.0)]),
        ("(\\(x\\))", [("(x)", 1.1)]),  # escaped brackets inside real ones
        ("lone \\ backslash", [("lone  backslash", 1.0)]),  # A1111 drops a backslash that escapes nothing
    ],
)
def test_escapes(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert parse_prompt_attention(prompt) == expected


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a) b", [("a) b", 1.0)]),  # a stray closer is text
        ("a] b", [("a] b", 1.0)]),
        ("[unbalanced", [("unbalanced", 1 / 1.1)]),
        ("((a) b", [("a", 1.21), (" b", 1.1)]),  # the unclosed outer bracket still applies
        ("(a:1.2", [("a:1.2", 1.1)]),  # no closing: the weight is text, the bracket is x1.1
        ("a :1.2) b", [("a :1.2) b", 1.0)]),  # a weight with no open bracket is text
        ("(a]", [("a]", 1.1)]),  # a square closer does not close a round bracket
    ],
)
def test_unbalanced(prompt: str, expected: list[tuple[str, float]]) -> None:
    got = parse_prompt_attention(prompt)
    assert [f.text for f in got] == [text for text, _ in expected]
    assert [f.weight for f in got] == pytest.approx([w for _, w in expected])


def test_break_splits_and_is_not_a_fragment() -> None:
    assert parse_prompt_attention("a cat BREAK a dog") == [("a cat", 1.0), BREAK, ("a dog", 1.0)]
    # A1111 keeps the empty text between BREAK and a bracket; it has no tokens, so it changes nothing.
    got = parse_prompt_attention("a cat\nBREAK\n(a dog)")
    assert got == [("a cat", 1.0), BREAK, ("", 1.0), ("a dog", 1.1)]
    assert parse_prompt_attention("BREAK cat") == [("", 1.0), BREAK, ("cat", 1.0)]  # as A1111


@pytest.mark.parametrize("prompt", ["BREAKFAST", "a break b", "aBREAK b"])
def test_break_needs_the_whole_uppercase_word(prompt: str) -> None:
    assert BREAK not in parse_prompt_attention(prompt)


def test_break_inside_brackets_still_breaks() -> None:
    # A1111 would send the word "BREAK" with weight -1.1 here; we keep it a break (see parser's docstring).
    assert parse_prompt_attention("(a BREAK b)") == [("a", 1.1), BREAK, ("b", 1.1)]


def test_break_is_a_marker_not_text() -> None:
    got = parse_prompt_attention("(a:-1) BREAK (b:-1)")
    assert got == [("a", -1.0), ("", 1.0), BREAK, ("", 1.0), ("b", -1.0)]
    assert isinstance(got[0], Fragment) and got[2] is BREAK and not isinstance(got[2], tuple)


def test_unreadable_weight_fails_loudly() -> None:
    with pytest.raises(InvalidParams, match="prompt"):
        parse_prompt_attention("(a:1.2.3)")


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a cat, red hat ,  , blue sky", ["a cat", "red hat", "blue sky"]),
        ("(red, blue:1.2), [dark, moody], sun", ["(red, blue:1.2)", "[dark, moody]", "sun"]),
        ("a \\(b, c\\), d", ["a \\(b", "c\\)", "d"]),  # escaped brackets do not group
        ("x \\, y, z", ["x \\, y", "z"]),  # an escaped comma does not split
        ("(unbalanced, still one", ["(unbalanced, still one"]),
        ("a), b", ["a)", "b"]),
        ("", []),
    ],
)
def test_keywords(prompt: str, expected: list[str]) -> None:
    assert keywords(prompt) == expected
