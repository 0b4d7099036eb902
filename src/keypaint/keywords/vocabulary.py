"""Keyword expansion: a known keyword brings the related keywords the model was trained with.

The built-in model learned from captions such as "red apple, apple, fruit, red, noto style": a CLDR label,
its tags, a style. A person types "red apple, noto style". Filling in the label's tags gives the model
the words it saw beside that picture in training, so the picture it paints is the one the label means
(prompt expansion, as Fooocus does with a language model; here it is a lookup in the model's own
vocabulary). A keyword that is exactly a known label (case and spacing aside) expands; so does one that
is close enough in meaning to a label (`keywords.meaning`: "cheeseburger" brings "hamburger" and its tags).
Emphasis syntax, `<lora:...>` tags and unmatched words pass through untouched, and a tag already in the
prompt is not repeated. The expanded prompt and the matches are recorded with the picture.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from keypaint.errors import ModelError
from keypaint.keywords.meaning import FILENAME as MEANING
from keypaint.keywords.meaning import Embed, Match, MeaningIndex, eligible
from keypaint.keywords.syntax import keywords

FORMAT = "keypaint-vocabulary/1"
FILENAME = "keywords.json"  # beside a model's weights (the built-in model's, an exported folder)


def _key(word: str) -> str:
    return " ".join(word.lower().split())


@dataclass(frozen=True)
class Vocabulary:
    """Known keywords (e.g. emoji labels) and the related keywords (tags) each one brings."""

    related: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # normalised label -> tags
    source: str = ""  # where the words come from, for the model card and `keypaint info`
    meaning: MeaningIndex | None = field(default=None, compare=False)  # other words find labels by meaning

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, Iterable[str]]], source: str = "") -> Vocabulary:
        """From (label, tags) pairs; the first pair of a label wins, tags equal to the label are dropped."""
        related: dict[str, tuple[str, ...]] = {}
        for label, tags in pairs:
            key = _key(label)
            if key and key not in related:
                seen, kept = {key}, []
                for tag in tags:
                    tag = " ".join(tag.split())
                    if tag and _key(tag) not in seen:
                        seen.add(_key(tag))
                        kept.append(tag)
                related[key] = tuple(kept)
        return cls(related, source)

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: not a readable keyword vocabulary ({exc})") from exc
        labels = data.get("labels") if isinstance(data, dict) else None
        if data.get("format") != FORMAT or not isinstance(labels, dict):
            raise ModelError(f"{path}: not a keyword vocabulary (expected format {FORMAT!r})")
        if not all(isinstance(v, list) and all(isinstance(t, str) for t in v) for v in labels.values()):
            raise ModelError(f"{path}: each keyword's tags must be a list of strings")
        return cls.from_pairs(labels.items(), str(data.get("source", "")))

    @classmethod
    def beside(cls, folder: Path) -> Vocabulary | None:
        """The vocabulary kept in a model folder (`keywords.json`), or None when it has none."""
        path = folder / FILENAME
        if not path.is_file():
            return None
        vocabulary = cls.load(path)
        if (folder / MEANING).is_file():
            vocabulary = replace(vocabulary, meaning=MeaningIndex.load(folder / MEANING))
        return vocabulary

    def save(self, path: Path) -> None:
        """JSON with one keyword per line (readable diffs), written atomically."""
        rows = ",\n".join(f"  {json.dumps(k, ensure_ascii=False)}: {json.dumps(list(v), ensure_ascii=False)}"
                          for k, v in sorted(self.related.items()))
        head = f'{{"format": {json.dumps(FORMAT)}, "source": {json.dumps(self.source, ensure_ascii=False)},'
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(f'{head}\n "labels": {{\n{rows}\n }}}}\n', encoding="utf-8")
        tmp.replace(path)

    def __len__(self) -> int:
        return len(self.related)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and _key(word) in self.related

    @cached_property
    def known(self) -> frozenset[str]:
        """Every label and tag, normalised: keywords the model was trained with, never matched by meaning."""
        return frozenset(self.related) | frozenset(_key(t) for tags in self.related.values() for t in tags)

    def expand(self, prompt: str, embed: Embed | None = None, skip: Iterable[str] = ()) -> Expansion:
        """`prompt` with each known keyword followed by its related keywords not already in the prompt.

        "red apple, noto style" -> "red apple, apple, diet, food, fruit, ..., noto style". With a meaning
        index and an `embed` function, a keyword that is no label or tag brings the nearest label by meaning
        and its tags: "cheeseburger" -> "cheeseburger, hamburger, burger, ...". A prompt without a known or
        matched keyword comes back unchanged (the same string). A keyword holding a word of `skip` (a LoRA
        or embedding trigger such as "xyzstyle") is never matched by meaning.
        """
        words = keywords(prompt)
        avoid = {_key(s) for s in skip if s.strip()}
        labels: dict[int, str] = {i: _key(w) for i, w in enumerate(words) if _key(w) in self.related}
        matches: list[Match] = []
        if self.meaning is not None and embed is not None:
            known = self.known
            todo = [(i, w) for i, w in enumerate(words) if i not in labels and eligible(w, known)
                    and not avoid & set(_key(w).split())]
            found = self.meaning.match([w for _, w in todo], embed)
            for (i, _), match in zip(todo, found, strict=True):
                if match is not None and _key(match.label) in self.related:
                    labels[i] = _key(match.label)
                    matches.append(match)
        if not labels:
            return Expansion(prompt)
        present = {_key(w) for w in words}
        out: list[str] = []
        for i, word in enumerate(words):
            out.append(word)
            label = labels.get(i)
            if label is None:
                continue
            brought = ([label] if label not in present else []) + list(self.related[label])
            for tag in brought:
                if _key(tag) not in present:
                    present.add(_key(tag))
                    out.append(tag)
        return Expansion(", ".join(out), tuple(matches))


@dataclass(frozen=True)
class Expansion:
    """The prompt the text encoder sees, and the keywords that found their label by meaning."""

    prompt: str
    matches: tuple[Match, ...] = ()

    @property
    def note(self) -> str:
        """"cheeseburger -> hamburger; feline -> cat": what the CLI prints and the picture records."""
        return "; ".join(str(m) for m in self.matches)


def expansion_record(typed: str, expansion: Expansion) -> dict[str, str]:
    """What a picture records of an expansion: the prompt the text encoder saw and the meaning matches."""
    record = {"Keywords used": expansion.prompt} if expansion.prompt != typed else {}
    if expansion.matches:
        record["Keyword meanings"] = expansion.note
    return record
