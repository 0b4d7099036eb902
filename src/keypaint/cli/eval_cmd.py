"""`keypaint eval HELDOUT`: generate the held-out pairs and score keyword fidelity and realism."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from keypaint.builtin import MODEL
from keypaint.cli.errors import user_errors
from keypaint.errors import KeypaintError

console = Console(stderr=True, highlight=False)


@user_errors
def eval_command(
    heldout: Annotated[Path, typer.Argument(help="Held-out folder (e.g. the emoji data's heldout/).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for eval.json, eval.md, samples.png.")
    ] = Path("eval"),
    model: Annotated[
        str | None, typer.Option(help="Model name, file or folder (default: the built-in model).")
    ] = None,
    scorer: Annotated[
        Path | None,
        typer.Option(help="Scorer folder with config.json + model.safetensors (default: built-in)."),
    ] = None,
    labels_from: Annotated[
        list[Path] | None,
        typer.Option(help="More folders whose labels join the ranking (e.g. train/); repeatable."),
    ] = None,
    steps: Annotated[int, typer.Option(help="Denoising steps per picture.")] = 20,
    cfg: Annotated[float | None, typer.Option("--cfg", help="Guidance scale (default: 7).")] = None,
    seed: Annotated[int, typer.Option(help="Pair i is drawn with seed + i.")] = 0,
    expand: Annotated[
        bool, typer.Option("--expand/--no-expand", help="Keyword expansion as `generate` does it.")
    ] = True,
    synonyms: Annotated[
        bool, typer.Option("--synonyms", help="Paint the synonym probes (a word that is no label) instead "
                           "of the held-out pairs; real pictures of their labels come from HELDOUT and "
                           "--labels-from.")
    ] = False,
    probes: Annotated[
        Path | None, typer.Option(help="Another probe file for --synonyms: word<TAB>label per line.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N held-out pairs.")] = None,
    grid: Annotated[int, typer.Option(help="Pairs shown in samples.png.")] = 32,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, fp32, fp16 or bf16.")] = "auto",
) -> None:
    """Scorer top-1/top-5 of generated vs real held-out pictures, and their Fréchet distance."""
    from keypaint.core.painter import Painter
    from keypaint.data.folder import load_folder
    from keypaint.scorer.data import record_label
    from keypaint.scorer.evaluate import (
        SYNONYMS,
        generate_pairs,
        heldout_pairs,
        probe_pairs,
        read_probes,
        real_pictures,
        run_report,
    )
    from keypaint.scorer.model import Scorer

    if limit is not None and limit < 1:
        raise KeypaintError("--limit must be at least 1")
    if probes is not None and not synonyms:
        raise KeypaintError("--probes goes with --synonyms")
    # 1. held-out pairs (or synonym probes) and the label set they are ranked in
    records = load_folder(heldout, check_images=False)
    more = [load_folder(folder, check_images=False) for folder in labels_from or []]
    if synonyms:
        words = read_probes(probes or SYNONYMS)
        pairs = probe_pairs(words, records + [r for rs in more for r in rs])[:limit]
        if not pairs:
            raise KeypaintError("no probe label has a real picture in HELDOUT or --labels-from")
    else:
        pairs = heldout_pairs(records, limit)
    labels = {pair.label for pair in pairs} | {record_label(r) for rs in more for r in rs}
    # 2. the model and the scorer (both loaded before the slow part, so a missing one fails at once)
    painter = Painter.load(model, device=device, dtype=dtype, builtin=MODEL)
    judge = Scorer.load(scorer, painter.device)
    # 3. the model paints every pair, the scorer judges, the report is written
    console.print(f"generating {len(pairs)} held-out pairs with {painter.model.name} on {painter.device} ...")
    generated, seconds = generate_pairs(painter, pairs, steps=steps, seed=seed, guidance_scale=cfg,
                                        expand_keywords=expand)
    real = real_pictures(pairs, painter.model.native_size)
    extra = {
        "model": painter.model.name,
        "model_hash": painter.model.short_hash,
        "steps": steps,
        "seed": seed,
        "expand_keywords": expand,
        "pairs": "synonym probes" if synonyms else "held-out pairs",
        "seconds_per_picture": seconds,
        "device": str(painter.device),
    }
    results, paths = run_report(judge, pairs, generated, real, sorted(labels), out, grid=grid, extra=extra)
    gen, ref = results["generated"], results["real"]
    console.print(
        f"top-1/top-5 generated {gen['top1']:.3f}/{gen['top5']:.3f}, "
        f"real {ref['top1']:.3f}/{ref['top5']:.3f}; Fréchet distance {results['frechet_distance']:.4f}"
    )
    console.print(f"wrote {', '.join(str(p) for p in paths)}")


def eval_app() -> typer.Typer:
    """`keypaint eval`: `pairs` (the default: `keypaint eval HELDOUT` still works) and `style`."""
    from keypaint.cli.default_group import default_group
    from keypaint.cli.eval_style_cmd import style_command

    group = typer.Typer(cls=default_group("pairs"), no_args_is_help=True)
    group.command("pairs")(eval_command)
    group.command("style", no_args_is_help=True)(style_command)
    return group
