"""`keypaint train scorer DATA --out DIR`: train the keyword-picture scorer (for --best-of and eval)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from keypaint.cli.errors import user_errors

console = Console(stderr=True, highlight=False)


@user_errors
def scorer_command(
    data: Annotated[Path, typer.Argument(help="Captioned picture folder (metadata.jsonl or .txt captions).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Scorer folder: config.json, model.safetensors.")],
    steps: Annotated[int, typer.Option(help="Optimizer steps in all.")] = 3000,
    minutes: Annotated[
        float | None, typer.Option(help="Also stop after this many minutes (lr curve follows).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="(picture, text) pairs per step = InfoNCE batch.")] = 256,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 2e-3,
    warmup: Annotated[int, typer.Option(help="Warm-up steps.")] = 200,
    image_size: Annotated[int, typer.Option(help="Side the scorer sees pictures at, in pixels.")] = 64,
    eval_dir: Annotated[
        Path | None,
        typer.Option("--eval", help="Held-out folder: top-1/top-5 label retrieval at checkpoints."),
    ] = None,
    label_prob: Annotated[float, typer.Option(help="Share of pairs captioned with the bare label.")] = 0.3,
    caption_variants: Annotated[int, typer.Option(help="Shuffled keyword captions per picture.")] = 4,
    style_augment: Annotated[
        float,
        typer.Option(help="Share of pictures redrawn grey, ink, edges, inverted or hue-shifted (0-1)."),
    ] = 0.0,
    init: Annotated[
        Path | None, typer.Option(help="Start from this scorer folder's weights (fine-tune a scorer).")
    ] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 500,
    log_every: Annotated[int, typer.Option(help="Steps between log lines.")] = 50,
    seed: int = 0,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
) -> None:
    """Train the scorer: a small image tower + a projection of the frozen MiniLM, CLIP-style."""
    from keypaint.scorer.train import train_scorer

    result = train_scorer(
        data,
        out,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        image_size=image_size,
        device=device,
        resume=resume,
        eval_dir=eval_dir,
        minutes=minutes,
        warmup_steps=warmup,
        label_prob=label_prob,
        caption_variants=caption_variants,
        style_augment=style_augment,
        init=init,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        seed=seed,
    )
    summary = f"scorer: step {result.step}, loss {result.loss:.3f}, {result.images_per_s:.0f} pictures/s"
    if result.eval:
        summary += ", " + ", ".join(f"{k} {v:.3f}" for k, v in result.eval.items())
    console.print(f"{summary} -> {result.out_dir}")
