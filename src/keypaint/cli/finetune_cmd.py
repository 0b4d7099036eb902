"""`keypaint finetune IMAGES_DIR --token NAME`: teach a model a style or a character from a few pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from keypaint.cli.errors import user_errors

console = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


@user_errors
def finetune_command(
    images: Annotated[
        Path,
        typer.Argument(help="Folder of 5-20 pictures; a same-name .txt beside a picture is its caption."),
    ],
    token: Annotated[str, typer.Option(help="The new word, e.g. xyzstyle: type it in prompts afterwards.")],
    method: Annotated[
        str,
        typer.Option(
            help="auto (lora; on the built-in model the measured best), lora, dora (weight-decomposed "
            "LoRA), loha, lokr (LyCORIS), b-lora (style or content block only), pivotal (LoRA + the word's "
            "vectors), dreambooth (LoRA + prior preservation), textual-inversion, or full (the whole U-Net, "
            "small bases)."
        ),
    ] = "auto",
    base: Annotated[
        str | None,
        typer.Option(
            help="Model to fine-tune: a name (keypaint models), file or folder (default: built-in)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="File to write (default: <home>/loras/TOKEN.safetensors, embeddings/ for TI; "
                          "full: the folder <home>/models/TOKEN)."),
    ] = None,
    steps: Annotated[int, typer.Option(help="Training steps.")] = 500,
    lr: Annotated[
        float | None,
        typer.Option(help="Learning rate (default: 1e-4 the LoRA methods, 5e-3 TI, 2e-5 full)."),
    ] = None,
    embedding_lr: Annotated[
        float | None, typer.Option(help="pivotal: the word's vectors' learning rate (default 5e-3).")
    ] = None,
    rank: Annotated[int | None, typer.Option(help="LoRA-family rank, alpha = rank (default 8).")] = None,
    targets: Annotated[
        str | None,
        typer.Option(help="LoRA layers: all (kohya's, default), attention, or cross-attention only; "
                          "b-lora: style (default), content or both."),
    ] = None,
    resolution: Annotated[
        int | None, typer.Option(help="Training picture side in px (default: the model's).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Pictures per step.")] = 4,
    vectors: Annotated[
        int | None, typer.Option(help="textual-inversion, pivotal: vectors the token stands for (default 4).")
    ] = None,
    init_word: Annotated[
        str | None, typer.Option(help="textual-inversion, pivotal: start from this word (default style).")
    ] = None,
    class_prompt: Annotated[
        str | None, typer.Option(help="DreamBooth: what the pictures show in general, e.g. dog.")
    ] = None,
    class_dir: Annotated[
        Path | None,
        typer.Option(help="Prior pictures (DreamBooth's class; a LoRA's regularisation set), .txt captions."),
    ] = None,
    class_images: Annotated[int, typer.Option(help="Prior pictures to use.")] = 50,
    prior_weight: Annotated[float, typer.Option(help="Weight of the prior loss.")] = 1.0,
    sample_every: Annotated[
        int, typer.Option(help="Paint a sample into RUN/samples every K steps (0: never).")
    ] = 0,
    sample_prompt: Annotated[
        str | None, typer.Option(help="Prompt of the samples (default: the first caption).")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Checkpoints and samples (default: <home>/finetune/TOKEN-METHOD).")
    ] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between resumable checkpoints.")] = 50,
    resume: Annotated[bool, typer.Option(help="Continue a killed run from its last checkpoint.")] = False,
    seed: int = 0,
    cpu: Annotated[bool, typer.Option(help="Train on the CPU even when a GPU is there.")] = False,
    min_snr: Annotated[float, typer.Option(help="Min-SNR-gamma loss weighting; 0 turns it off.")] = 5.0,
    min_timestep: Annotated[int, typer.Option(help="Train on noise levels from this timestep.")] = 0,
    max_timestep: Annotated[
        int, typer.Option(help="... up to this one (lower: learn the rendering, keep the composition).")
    ] = 1000,
    allow_pickle: Annotated[bool, typer.Option(help="Allow a .ckpt/.pt base (read weights-only).")] = False,
    home: Annotated[
        Path | None, typer.Option(help="keypaint's data folder (default: $KEYPAINT_HOME)")
    ] = None,
) -> None:
    """Train a LoRA (DoRA, LoHa, LoKr, B-LoRA), an embedding, both, or the whole U-Net on a few pictures."""
    from keypaint.finetune import FinetuneConfig, FinetuneError, Method
    from keypaint.finetune.train import finetune, plan

    try:
        chosen = Method(method)
    except ValueError:
        raise FinetuneError(f"--method must be one of {', '.join(m.value for m in Method)}") from None
    cfg = FinetuneConfig(
        images=images,
        token=token,
        method=chosen,
        base=base,
        out=out,
        run_dir=run_dir,
        steps=steps,
        lr=lr,
        embedding_lr=embedding_lr,
        rank=rank,
        targets=targets,
        resolution=resolution,
        batch_size=batch_size,
        vectors=vectors,
        init_word=init_word,
        class_prompt=class_prompt,
        class_dir=class_dir,
        class_images=class_images,
        prior_weight=prior_weight,
        min_snr_gamma=min_snr or None,
        min_timestep=min_timestep,
        max_timestep=max_timestep,
        sample_every=sample_every,
        sample_prompt=sample_prompt,
        checkpoint_every=checkpoint_every,
        seed=seed,
        resume=resume,
        cpu=cpu,
        home=home,
        allow_pickle=allow_pickle,
    )
    checked = plan(cfg)  # 1. options, pictures and paths, before any model loads
    captioned = sum(1 for image in checked.images.images if image.caption)
    stderr.print(f"{len(checked.images.images)} pictures ({captioned} with captions) -> {checked.out}")
    chosen = checked.config.method

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()  # the training bar is the one to watch
    transformers_logging.disable_progress_bar()
    result = finetune(cfg, log=lambda line: stderr.print(line, markup=False))
    if not result.main_process:  # `accelerate launch`: the main process reports
        return
    use, suffix = {Method.TEXTUAL_INVERSION: ("--embedding", ""), Method.FULL: ("--model", "")}.get(
        chosen, ("--lora", ":0.8")
    )
    minutes = result.seconds / 60
    console.print(
        f"{result.path}  [dim]{result.bytes / 1e6:.2f} MB, {result.steps} steps in {minutes:.1f} min "
        f"on {result.device}[/]",
        soft_wrap=True,
    )
    console.print(
        f'use it: keypaint generate "cat face, {token}" {use} {result.path}{suffix}', soft_wrap=True
    )
