"""Keyword expansion: a known keyword brings the related keywords the model was trained with.

The built-in model learned from captions such as "red apple, apple, fruit, red, noto style": a CLDR label,
its tags, a style. A person types "red apple, noto style". Filling in the label's tags gives the model
the words it saw beside that picture in training, so the picture it paints is the one the label means
(prompt expansion, as Fooocus does with a language model; here it is a lookup in the model's own
vocabulary). Only a keyword that is exactly a known label (case and spacing aside) expands; emphasis
syntax, `<lora:...>` tags and unknown words pass through untouched, and a tag already in the prompt is
not repeated. The expanded prompt is recorded with the picture.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from keypaint.errors import ModelError
from keypaint.prompts.parser import keywords

FORMAT = "keypaint-vocabulary/1"
FILENAME = "keywords.json"  # beside a model's weights (the built-in model's, an exported folder)


def _key(word: str) -> str:
    return " ".join(word.lower().split())


@dataclass(frozen=True)
class Vocabulary:
    """Known keywords (e.g. emoji labels) and the related keywords (tags) each one brings."""

    related: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # normalised label -> tags
    source: str = ""  # where the words come from, for the model card and `keypaint info`

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
        return cls.load(path) if path.is_file() else None

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

    def expand(self, prompt: str) -> str:
        """`prompt` with each known keyword followed by its related keywords not already in the prompt.

        "red apple, noto style" -> "red apple, apple, diet, food, fruit, ..., noto style". A prompt
        without a known keyword comes back unchanged (the same string).
        """
        words = keywords(prompt)
        if not any(_key(w) in self.related for w in words):
            return prompt
        present = {_key(w) for w in words}
        out: list[str] = []
        for word in words:
            out.append(word)
            for tag in self.related.get(_key(word), ()):
                if _key(tag) not in present:
                    present.add(_key(tag))
                    out.append(tag)
        return ", ".join(out)
