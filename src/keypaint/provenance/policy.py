"""The content policy: keywords and phrases an operator refuses to paint, checked before any compute.

The list ships empty. An operator fills `$KEYPAINT_HOME/blocked-keywords.txt` (one keyword or phrase per
line, `#` starts a comment) and/or passes entries in code. Matching ignores case, Unicode width forms
(NFKC), punctuation and A1111 emphasis, and is by whole words: "gore" blocks "(gore:1.3)" but not "gorey".
Refusals are logged without the prompt's text, so the log never becomes a store of what people asked for.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from keypaint.errors import KeypaintError

BLOCKLIST_FILE = "blocked-keywords.txt"
log = logging.getLogger("keypaint.policy")
_NOT_WORD = re.compile(r"[\W_]+")


class PolicyRefusal(KeypaintError):
    """A request refused by the operator's content policy (nothing was computed)."""

    def __init__(self, entry: str, source: str) -> None:
        super().__init__(f"refused by the content policy: the prompt contains the blocked keyword "
                         f"or phrase {entry!r} (from {source})")
        self.entry = entry
        self.source = source


@dataclass(frozen=True)
class ContentPolicy:
    """Blocked keywords and phrases; `check` raises `PolicyRefusal` when a prompt contains one."""

    blocked: tuple[str, ...] = ()
    source: str = "settings"  # where the entries came from, named in refusals and logs

    @classmethod
    def load(cls, home: Path | None = None, extra: Iterable[str] = ()) -> ContentPolicy:
        """The policy of `<home>/blocked-keywords.txt` (absent: no entries) plus `extra` entries."""
        from keypaint.models.registry import keypaint_home

        path = (home or keypaint_home()) / BLOCKLIST_FILE
        entries = list(extra)
        sources = ["settings"] if entries else []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        except (OSError, UnicodeDecodeError) as exc:
            # a policy that silently fails open is worse than a loud error
            raise KeypaintError(f"cannot read the content policy {path}: {exc}") from None
        file_entries = [line.split("#", 1)[0].strip() for line in lines]
        if any(file_entries):
            sources.append(str(path))
        entries += file_entries
        return cls(blocked=tuple(e for e in entries if _normalise(e)), source=" and ".join(sources) or "none")

    def find(self, text: str) -> str | None:
        """The first blocked entry that `text` contains as whole words, or None."""
        haystack = f" {_normalise(text)} "
        for entry in self.blocked:
            if f" {_normalise(entry)} " in haystack:
                return entry
        return None

    def check(self, prompt: str) -> None:
        """Raise `PolicyRefusal` if `prompt` contains a blocked entry; log the refusal, not the prompt."""
        entry = self.find(prompt)
        if entry is None:
            return
        log.warning("content policy refused a request: blocked entry #%d from %s matched "
                    "(prompt of %d characters, not stored)", self.blocked.index(entry) + 1, self.source,
                    len(prompt))
        raise PolicyRefusal(entry, self.source)


def _normalise(text: str) -> str:
    """Lower-case words separated by single spaces: punctuation, emphasis weights' brackets go."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NOT_WORD.sub(" ", folded).split())
