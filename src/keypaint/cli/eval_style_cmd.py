"""`keypaint eval style HELDOUT --real DIR --token T --lora FILE`: style adoption and content, fairly."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from keypaint.builtin import MODEL
from keypaint.cli.errors import user_errors
from keypaint.errors import KeypaintError

console = Console(stderr=True, highlight=False)


@user_errors
def style_command(
    heldout: Annotated[
        Path, typer.Argument(help="Real pictures in the target style of the names to evaluate (captioned).")
    ],
    real: Annotated[
        Path, typer.Option(help="More real pictures of the target style, other names: the classifier's.")
    ],
    token: Annotated[str, typer.Option(help="The learned word, added to every prompt: 'NAME, TOKEN'.")],
    base_data: Annotated[
        Path | None,
        typer.Option(help="The base model's training data (its styles): the classifier's other side and "
                     "the label space. Not needed with --classifier (labels then come from the scorer)."),
    ] = None,
    lora: Annotated[Path | None, typer.Option(help="The fine-tune's LoRA file to evaluate.")] = None,
    weight: Annotated[
        list[float] | None, typer.Option(help="LoRA weight; repeat for several rows (default 1).")
    ] = None,
    embedding: Annotated[
        list[Path] | None, typer.Option(help="Textual-inversion embedding file(s) used with it.")
    ] = None,
    tuned_model: Annotated[
        Path | None, typer.Option(help="A fully fine-tuned model folder to evaluate (another row).")
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for style.json, style.md, style.png, pictures/.")
    ] = Path("eval-style"),
    model: Annotated[str | None, typer.Option(help="Base model (default: the built-in model).")] = None,
    scorer: Annotated[Path | None, typer.Option(help="Scorer folder (default: built-in).")] = None,
    classifier: Annotated[
        Path | None, typer.Option(help="A style classifier saved by an earlier run (skips training it).")
    ] = None,
    negatives: Annotated[int, typer.Option(help="Base pictures the classifier sees.")] = 4000,
    classifier_steps: Annotated[int, typer.Option(help="Classifier training steps.")] = 400,
    steps: Annotated[int, typer.Option(help="Denoising steps per picture.")] = 20,
    seed: Annotated[int, typer.Option(help="Name i is painted with seed + i.")] = 0,
    limit: Annotated[int | None, typer.Option(help="Only the first N names.")] = None,
    monochrome_names: Annotated[
        bool, typer.Option(help="Keep names the base draws in monochrome too (left out when the style is).")
    ] = False,
    grid: Annotated[int, typer.Option(help="Names shown in style.png.")] = 10,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
) -> None:
    """Adoption by a style classifier trained on real pictures; content as scorer top-5 vs real in-style."""
    from keypaint.core.painter import Painter
    from keypaint.core.params import LoraRef
    from keypaint.data.folder import load_folder
    from keypaint.prompts.embeddings import TOKEN_PATTERN
    from keypaint.scorer.model import BUILTIN_DIR, Scorer
    from keypaint.scorer.style_classifier import StyleClassifier
    from keypaint.scorer.style_eval import (
        Variant,
        evaluate_style,
        fit_instrument,
        picture_rows,
        report_markdown,
        style_sets,
    )

    # 1. everything a user can get wrong, before any model loads
    if not TOKEN_PATTERN.fullmatch(token):
        raise KeypaintError(f"--token {token!r} is not a word (2-40 letters, digits, '_' or '-')")
    if limit is not None and limit < 2:
        raise KeypaintError("--limit must be at least 2")
    weights = weight or [1.0]
    if any(not math.isfinite(w) or not -2 <= w <= 2 for w in weights):
        raise KeypaintError("--weight must lie within [-2, 2]")
    if weight and lora is None:
        raise KeypaintError("--weight goes with --lora")
    if base_data is None and classifier is None:
        raise KeypaintError("give --base-data (the base model's training data) or a saved --classifier")
    for path in [lora, tuned_model, classifier, *(embedding or [])]:
        if path is not None and not path.exists():
            raise KeypaintError(f"{path}: no such file or folder")
    if out.exists() and any(out.iterdir()):
        raise KeypaintError(f"{out} is not empty; choose another --out (nothing is overwritten)")
    base_records = load_folder(base_data, check_images=False) if base_data is not None else []
    sets = style_sets(
        load_folder(real, check_images=False), load_folder(heldout, check_images=False),
        base_records or load_folder(heldout, check_images=False), limit=limit,
        monochrome_names=monochrome_names or not base_records,
    )
    if not base_records:  # the label space comes from the scorer that ships its labels
        labels_file = (scorer or BUILTIN_DIR) / "labels.txt"
        if not labels_file.is_file():
            raise KeypaintError(f"{labels_file}: no label list; give --base-data")
        sets = sets.with_labels(labels_file.read_text(encoding="utf-8").splitlines())

    # 2. the instrument (trained on real pictures, or loaded), the models
    if classifier is not None:
        instrument = StyleClassifier.load(classifier)
    else:
        console.print(f"training the style classifier on {len(sets.target)} pictures of the style ...")
        instrument = fit_instrument(sets, negatives=negatives, steps=classifier_steps, seed=seed)
    painter = Painter.load(model, device=device, builtin=MODEL)
    judge = Scorer.load(scorer, painter.device)
    variants = [Variant(f"LoRA {w:g}", loras=(LoraRef(str(lora), w),),
                        embeddings=tuple(str(e) for e in embedding or ())) for w in weights] if lora else []
    if embedding and not lora:
        variants.append(Variant("embedding", embeddings=tuple(str(e) for e in embedding)))
    if tuned_model is not None:
        variants.append(Variant("tuned model", painter=Painter.load(str(tuned_model), device=painter.device)))

    # 3. paint, judge, write
    console.print(f"painting {len(sets.names)} names x {1 + len(variants)} on {painter.device} ...")
    report, rows = evaluate_style(painter, judge, sets, instrument, token, variants, steps=steps, seed=seed)
    report.extra.update({
        "model": painter.model.name, "model_hash": painter.model.short_hash, "token": token,
        "names": len(sets.names), "left_out": list(sets.left_out), "steps": steps, "seed": seed,
        "device": str(painter.device),
    })
    out.mkdir(parents=True, exist_ok=True)
    (out / "style.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    (out / "style.md").write_text(report_markdown(report, token) + "\n", encoding="utf-8")
    if classifier is None:
        about = {"real": str(real), "pictures": len(sets.target)}
        instrument.save(out / "style-classifier.safetensors", about)
    picture_rows([row[:grid] for row in rows]).save(out / "style.png")
    for title, row in zip(["base", *(v.name for v in variants)], rows[1:], strict=True):
        folder = out / "pictures" / title.replace(" ", "-").lower()
        folder.mkdir(parents=True)
        for i, image in enumerate(row):
            image.save(folder / f"{i:03d}.png")
    console.print(report_markdown(report, token), markup=False)
    console.print(f"wrote {out / 'style.json'}, {out / 'style.md'}, {out / 'style.png'}")
