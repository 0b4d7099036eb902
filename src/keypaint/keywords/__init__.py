"""Keywords: what a user types, split and weighted as A1111 reads it, and matched to what a model knows.

- `syntax`: A1111's emphasis syntax (`(word:1.3)`, `[word]`, `BREAK`) and the comma-separated keywords.
- `vocabulary`: the labels and tags a model was trained with; a known keyword brings its tags.
- `meaning`: a keyword that is no label, matched to the nearest label by sentence embedding.

Pure Python and numpy (PyTorch only inside `meaning.sentence_embeddings`), below both `models` (a loaded
model carries its vocabulary) and `prompts` (which encodes the parsed text).
"""
