"""Does `keypaint finetune` learn a character from 5 pictures and draw it in other styles? (issue 18)

    python benchmarks/character_data.py --out .gpu/character          # once: the characters' pictures
    OMP_NUM_THREADS=1 python benchmarks/character.py                  # train, paint, score, figures
    python benchmarks/character.py --method dreambooth                # the same with DreamBooth's prior
    python benchmarks/character.py --quick                            # 10 steps, 2 seeds: a smoke run

For each character of `character_data.py` (a real emoji face wearing an accessory cut from another
emoji: a combination the built-in model never saw) a LoRA is trained on its 5 pictures, on the very
model object that paints. Then N seeds each are painted of the base model's "CLASS" and of the LoRA's
"CLASS, TOKEN" (the training caption, `FinetuneConfig.caption`), and of both with ", S style" added for
each other style S. With the built-in scorer (keypaint.scorer, its image and text embeddings):

- subject: the mean cosine similarity of a picture to the 5 references in the scorer's image embedding;
  LoRA against the base model with the same words minus the token. "Gap closed" puts the LoRA's gain on
  the scale from the base model (0) to the references' own mean similarity to each other (1);
- label: the scorer's top-5 retrieval of CLASS among its labels, LoRA against the base model;
- style: the share of pictures whose top-1 among the 10 style keywords' texts ("twemoji style", ...)
  is the one asked for, LoRA against the base model asked for the same style (the ceiling). The check is
  first run on 20 real training pictures of each style (`--data/styles`), so its own accuracy is known.

Goals, fixed before the first run: subject gap closed >= 0.5 in the default style and >= 0.25 in the
other styles (the LoRA moved at least halfway, or a quarter of the way, from the base model's class to
the character); label top-5 and style share each >= 0.8 x the base model's.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from typing import TYPE_CHECKING

import torch
from PIL import Image

from finetune import fidelity, grid, paint

if TYPE_CHECKING:
    from keypaint import Painter
    from keypaint.scorer import Scorer

DATA = Path(".gpu/character")
STYLES = ("twemoji", "openmoji", "fluent-flat")  # other styles to draw the character in (not noto)
GOALS = {"subject_default": 0.5, "subject_styles": 0.25, "label_ratio": 0.8, "style_ratio": 0.8}


def style_names() -> list[str]:
    from keypaint.data.emoji import EMOJI_SETS

    return [s.style for s in EMOJI_SETS]


def style_share(scorer: Scorer, images: list[Image.Image], style: str) -> float:
    """Share of pictures whose nearest style keyword text (of the 10) is `style`'s."""
    from keypaint.data.captions import style_keyword

    names = style_names()
    sims = scorer.image_features(images) @ scorer.text_features([style_keyword(n) for n in names]).T
    return float((sims.argmax(dim=1) == names.index(style)).float().mean())


def subject(scorer: Scorer, images: list[Image.Image], references: torch.Tensor) -> float:
    """Mean cosine similarity of the pictures to the references (unit vectors) in the scorer's embedding."""
    return float((scorer.image_features(images) @ references.T).mean())


def self_similarity(references: torch.Tensor) -> float:
    """The references' mean similarity to each other (the diagonal left out): where the character is."""
    n = len(references)
    sims = references @ references.T
    return float((sims.sum() - sims.diagonal().sum()) / (n * (n - 1)))


def low_noise_error(painter: Painter, images: list[Image.Image], caption: str, t: int = 50,
                    draws: int = 8) -> list[float]:
    """The base model's noise-prediction error E|eps_hat(z_t, t) - eps|^2 on each picture at a low noise
    level t: small for pictures like its training data, large for pictures its denoiser cannot place
    (0.10 for noto's cat face at t=50, against 0.5-1.0 for the same face moved or rescaled)."""
    import numpy as np
    from diffusers import DDPMScheduler

    from keypaint.prompts.encode import encode_captions

    model = painter.model
    vae, unet = model.pipe.vae, model.denoiser
    pixels = torch.stack([torch.from_numpy(np.array(i.convert("RGB"))).permute(2, 0, 1) for i in images])
    pixels = (pixels.float() / 127.5 - 1).to(unet.device)
    scheduler = DDPMScheduler.from_config(model.pipe.scheduler.config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
        context, _ = encode_captions(model, [caption] * len(z))
        steps = torch.full((len(z),), t, device=z.device)
        total = torch.zeros(len(z), device=z.device)
        for _ in range(draws):
            noise = torch.randn(z.shape, generator=generator).to(z.device)
            # z_t = sqrt(a_t) z_0 + sqrt(1 - a_t) eps, and the base model's guess of eps
            pred = unet(scheduler.add_noise(z, noise, steps), steps, context).sample
            total += ((pred - noise) ** 2).mean(dim=(1, 2, 3)) / draws
    return [round(float(v), 3) for v in total]


def framing_check(painter: Painter, data: Path, character: dict) -> dict[str, float]:
    """`low_noise_error` of the character's 5 pictures and of the real emoji picture of its subject."""
    folder = data / character["name"]
    references = [Image.open(p) for p in sorted((folder / "train").glob("*.png"))]
    subject = Image.open(folder / "sources" / character["sources"][0])
    errors = low_noise_error(painter, [*references, subject], character["class"])
    return {"references": float(sum(errors[:-1]) / len(references)), "subject_picture": errors[-1]}


def base_checks(painter: Painter, scorer: Scorer, data: Path, character: dict,
                args: argparse.Namespace) -> dict:
    """What needs no training: `framing_check`, and the subject similarity of the base model's pictures
    of the class in the subject's own style ("cat face, noto style"): the score of a model that draws
    the source emoji and not the character (the accessory is what it lacks)."""
    from keypaint.data.captions import style_keyword

    folder = data / character["name"] / "train"
    ref = scorer.image_features([Image.open(p) for p in sorted(folder.glob("*.png"))])
    prompt = f"{character['class']}, {style_keyword(character['subject_style'])}"
    own, _ = paint(painter, [prompt] * args.seeds, args.seed, args.gen_steps)
    return {"low_noise_error": framing_check(painter, data, character),
            "subject_base_own_style": subject(scorer, own, ref)}


def check_style_instrument(scorer: Scorer, data: Path) -> dict[str, float]:
    """The style check on real pictures of each style: its accuracy where the answer is known."""
    folders = {style: data / "styles" / style for style in style_names()}
    return {
        style: style_share(scorer, [Image.open(p) for p in sorted(folder.glob("*.png"))], style)
        for style, folder in folders.items()
        if folder.is_dir()
    }


def run_character(
    painter: Painter, scorer: Scorer, character: dict, args: argparse.Namespace, labels: list[str]
) -> tuple[dict, list[list[Image.Image]]]:
    from keypaint.core.params import LoraRef
    from keypaint.finetune import FinetuneConfig, Method
    from keypaint.finetune.train import finetune

    folder = args.data / character["name"] / "train"
    references = [Image.open(p) for p in sorted(folder.glob("*.png"))]
    ref = scorer.image_features(references)
    cls, token = character["class"], character["token"]
    config = FinetuneConfig(
        images=folder,
        token=token,
        method=Method(args.method),
        steps=args.steps,
        rank=args.rank,
        lr=args.lr,
        batch_size=args.batch_size,
        class_prompt=cls if args.method == "dreambooth" else None,
        class_images=args.class_images,
        home=args.out / "home",
        run_dir=args.out / "runs" / f"{character['name']}-{args.method}",
        seed=args.seed,
        cpu=painter.device.type == "cpu",
        checkpoint_every=max(50, args.steps // 4),
    )
    start = time.perf_counter()
    result = finetune(config, model=painter.model, progress=not args.no_progress)
    train_minutes = (time.perf_counter() - start) / 60
    lora = (LoraRef(str(result.path), args.weight),)
    prompt = config.caption(cls)  # what it was trained with: "cat face, TOKEN" (DreamBooth: + " cat face")

    def measure(images: list[Image.Image], style: str | None) -> dict:
        out = {
            "subject": subject(scorer, images, ref),
            "top5": fidelity(scorer, images, [cls] * len(images), labels),
        }
        if style is not None:
            out["style"] = style_share(scorer, images, style)
        return out

    rows: list[list[Image.Image]] = [references]
    entry: dict = {
        "token": token,
        "class": cls,
        "subject_style": character["subject_style"],
        "method": args.method,
        "prompt": prompt,
        "references_self_similarity": self_similarity(ref),
        "references_top5": fidelity(scorer, references, [cls] * len(references), labels),
        **base_checks(painter, scorer, args.data, character, args),
        "train_minutes": train_minutes,
        "file_bytes": result.bytes,
        "final_loss": result.loss,
        "settings": {},
    }
    from keypaint.data.captions import style_keyword

    for style in (None, *args.styles):
        suffix = f", {style_keyword(style)}" if style else ""
        base, _ = paint(painter, [cls + suffix] * args.seeds, args.seed, args.gen_steps)
        tuned, seconds = paint(painter, [prompt + suffix] * args.seeds, args.seed, args.gen_steps, loras=lora)
        b, t = measure(base, style), measure(tuned, style)
        ceiling = entry["references_self_similarity"]
        t["gap_closed"] = (t["subject"] - b["subject"]) / (ceiling - b["subject"])
        t["label_ratio"] = t["top5"] / b["top5"] if b["top5"] else None
        if style is not None:
            t["style_ratio"] = t["style"] / b["style"] if b["style"] else None
        t["seconds_per_picture"] = seconds
        entry["settings"][style or "default"] = {"base": b, "lora": t}
        rows += [base[: args.grid], tuned[: args.grid]]
        print(json.dumps({character["name"]: {style or "default": {"base": b, "lora": t}}}), flush=True)
    entry["goals"] = goals_met(entry)
    return entry, rows


def goals_met(entry: dict) -> dict[str, bool]:
    """Each goal of the module docstring, met or not, over this character's settings."""
    settings = entry["settings"]
    styled = [s for name, s in settings.items() if name != "default"]
    ratio = [s["lora"]["label_ratio"] or 0.0 for s in settings.values()]
    return {
        "subject_default": settings["default"]["lora"]["gap_closed"] >= GOALS["subject_default"],
        "subject_styles": all(s["lora"]["gap_closed"] >= GOALS["subject_styles"] for s in styled),
        "label_ratio": all(r >= GOALS["label_ratio"] for r in ratio),
        "style_ratio": all((s["lora"]["style_ratio"] or 0.0) >= GOALS["style_ratio"] for s in styled),
    }


def table(results: dict) -> str:
    lines = [
        f"{results['seeds']} seeds per prompt, {results['settings']['gen_steps']} steps, "
        f"{results['settings']['steps']} training steps ({results['settings']['method']}), "
        f"device: {results['device']}",
        "",
        "| character | style | subject: LoRA | base | references | gap closed | top-5: LoRA | base | "
        "references | style: LoRA | base |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in results["characters"].items():
        for style, s in e["settings"].items():
            b, t = s["base"], s["lora"]
            styles = f"{t['style']:.0%} | {b['style']:.0%}" if "style" in t else "- | -"
            lines.append(
                f"| {name} | {style} | {t['subject']:.3f} | {b['subject']:.3f} | "
                f"{e['references_self_similarity']:.3f} | {t['gap_closed']:.2f} | {t['top5']:.2f} | "
                f"{b['top5']:.2f} | {e['references_top5']:.2f} | {styles} |"
            )
    lines += [""] + [
        f"{name}: the base model's low-noise error (t=50) on its 5 pictures "
        f"{e['low_noise_error']['references']:.2f}, on its subject's real emoji picture "
        f"{e['low_noise_error']['subject_picture']:.2f}; subject similarity of the base model's "
        f"\"{e['class']}, {e['subject_style']} style\" {e['subject_base_own_style']:.3f}"
        for name, e in results["characters"].items()
    ]
    lines += ["", "style check on real pictures: " + ", ".join(
        f"{k} {v:.0%}" for k, v in results["style_check_real"].items())]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    from keypaint import Painter
    from keypaint.scorer import Scorer
    from keypaint.scorer.model import BUILTIN_DIR

    manifest = json.loads((args.data / "characters.json").read_text(encoding="utf-8"))
    labels = (BUILTIN_DIR / "labels.txt").read_text(encoding="utf-8").splitlines()
    painter = Painter.load(None, device=args.device, dtype="fp32", home=args.out / "home")
    scorer = Scorer.load(None, device=painter.device)
    results: dict = {
        "device": torch.cuda.get_device_name() if painter.device.type == "cuda" else "cpu",
        "base_model": {"name": painter.model.name, "sha256": painter.model.sha256},
        "seeds": args.seeds,
        "settings": {k: str(v) for k, v in vars(args).items()},
        "goals": GOALS,
        "style_check_real": check_style_instrument(scorer, args.data),
        "characters": {},
    }
    for character in manifest["characters"]:
        if args.characters and character["name"] not in args.characters:
            continue
        if args.checks_only:
            print(character["name"], json.dumps(base_checks(painter, scorer, args.data, character, args)))
            continue
        entry, rows = run_character(painter, scorer, character, args, labels)
        results["characters"][character["name"]] = entry
        figure = grid(rows, tile=args.tile).quantize(256, dither=Image.Dither.NONE)  # a small PNG for docs
        figure.save(args.out / f"character-{character['name']}-{args.method}.png", optimize=True)
    if args.checks_only:
        return results
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (args.out / "results.md").write_text(table(results) + "\n", encoding="utf-8")
    print(table(results))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA, help="from benchmarks/character_data.py")
    parser.add_argument("--out", type=Path, default=Path("outputs/character-benchmark"))
    parser.add_argument("--characters", nargs="*", default=None, help="names in characters.json (all)")
    parser.add_argument("--method", default="lora", choices=["lora", "dreambooth"])
    parser.add_argument("--steps", type=int, default=300, help="training steps per character")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--class-images", type=int, default=50, help="DreamBooth: base-model class pictures")
    parser.add_argument("--weight", type=float, default=1.0, help="LoRA weight when painting")
    parser.add_argument("--styles", nargs="*", default=list(STYLES))
    parser.add_argument("--seeds", type=int, default=8, help="pictures per prompt")
    parser.add_argument("--gen-steps", type=int, default=20)
    parser.add_argument("--grid", type=int, default=8, help="pictures per row in the figures")
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda (default: the GPU if there is one)")
    parser.add_argument("--quick", action="store_true", help="10 steps, 2 seeds, 4 denoising steps")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--checks-only", action="store_true",
                        help="only the base model's low-noise error on each character's pictures")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.seeds, args.gen_steps, args.grid, args.class_images = 10, 2, 4, 2, 2
    args.out.mkdir(parents=True, exist_ok=True)
    if (args.out / "home").exists() and not args.checks_only:
        raise SystemExit(f"{args.out} holds an earlier run; choose another --out")
    run(args)


if __name__ == "__main__":
    main()
