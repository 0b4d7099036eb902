"""The content policy: blocked keywords refused before any compute, logged without the prompt."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.errors import KeypaintError
from keypaint.provenance.policy import BLOCKLIST_FILE, ContentPolicy, PolicyRefusal


def test_refusal_comes_before_any_unet_call(tiny_sd1) -> None:
    calls: list[int] = []
    hook = tiny_sd1.pipe.unet.register_forward_hook(lambda *_: calls.append(1))
    steps: list[object] = []
    try:
        painter = Painter(tiny_sd1, policy=ContentPolicy(blocked=("forbidden thing",)))
        params = GenerationParams(prompt="a (Forbidden  Thing:1.3), red", steps=2, width=64, height=64,
                                  seed=1)
        with pytest.raises(PolicyRefusal, match="forbidden thing"):
            painter.generate(params, on_step=steps.append)
        assert steps == [] and calls == []
        painter.generate(GenerationParams(prompt="a red apple", steps=1, width=64, height=64, seed=1),
                         on_step=steps.append)
        assert len(steps) == 1 and calls  # the same painter still paints what the policy allows
    finally:
        hook.remove()


def test_refusal_is_a_keypaint_error_with_a_clear_message() -> None:
    with pytest.raises(KeypaintError) as info:
        ContentPolicy(blocked=("gore",)).check("gore, night")
    assert str(info.value) == ("refused by the content policy: the prompt contains the blocked keyword or "
                               "phrase 'gore' (from settings)")


@pytest.mark.parametrize(("prompt", "blocked"), [
    ("(gore:1.4), night", True),
    ("GORE", True),
    ("gorey story, night", False),  # whole words only
    ("a gore-tex jacket", True),  # punctuation separates words: an operator wanting this can say so
    ("an apple", False),
])
def test_matching_is_by_whole_words_ignoring_case_and_emphasis(prompt: str, blocked: bool) -> None:
    assert (ContentPolicy(blocked=("gore",)).find(prompt) is not None) is blocked


def test_phrases_match_as_a_sequence_of_words() -> None:
    policy = ContentPolicy(blocked=("red apple",))
    assert policy.find("a [red] (apple:1.2)") == "red apple"
    assert policy.find("red, green apple") is None


def test_empty_policy_and_missing_file_allow_everything(_private_home: Path) -> None:
    policy = ContentPolicy.load()
    assert policy.blocked == () and policy.find("anything at all") is None


def test_file_entries_with_comments_and_extra_entries(_private_home: Path) -> None:
    text = "# one keyword or phrase per line\nfoo bar  # a phrase\n\nbaz\n"
    (_private_home / BLOCKLIST_FILE).write_text(text)
    policy = ContentPolicy.load(extra=["qux"])
    assert policy.blocked == ("qux", "foo bar", "baz")
    assert BLOCKLIST_FILE in policy.source and "settings" in policy.source
    with pytest.raises(PolicyRefusal, match=BLOCKLIST_FILE):
        policy.check("FOO, bar")


def test_unreadable_policy_file_fails_loudly(_private_home: Path) -> None:
    (_private_home / BLOCKLIST_FILE).write_bytes(b"\xff\xfe\x00broken")
    with pytest.raises(KeypaintError, match="cannot read the content policy"):
        ContentPolicy.load()


def test_refusals_are_logged_without_the_prompt(caplog: pytest.LogCaptureFixture) -> None:
    secret = "secret words, gore, more secret words"
    with caplog.at_level(logging.WARNING, logger="keypaint.policy"), pytest.raises(PolicyRefusal):
        ContentPolicy(blocked=("nothing", "gore")).check(secret)
    [record] = caplog.records
    assert "entry #2" in record.getMessage()
    assert "secret" not in record.getMessage() and "gore" not in record.getMessage()
