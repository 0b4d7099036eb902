"""The speed options `keypaint generate` and `keypaint serve` share (one help text each)."""

from __future__ import annotations

from typing import Annotated

import typer

Fast = Annotated[
    bool, typer.Option(help="exact fast path, same picture: ONNX Runtime on CPUs, compiled on GPUs")
]
DeepCache = Annotated[
    int, typer.Option(help="approximate: recompute deep U-Net blocks every N-th step (recorded)")
]
TokenMerging = Annotated[
    float,
    typer.Option(help="approximate: merge this share of tokens before the first level's self-attention"),
]
