"""`keypaint train vae|unet|lcm|controlnet|scorer DATA ...` and `keypaint export MODEL DIR`.

The same commands run on 1 CPU, 1 GPU, or N GPUs: `accelerate launch -m keypaint.cli.train_cmd unet ...`
(or torchrun) starts one process per GPU; each one runs exactly this code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from keypaint.cli.errors import user_errors
from keypaint.cli.model_options import AllowPickle

train_app = typer.Typer(
    help="Train the built-in model's parts: `vae`, then `unet` on the VAE's latents (`lcm`, `scorer`).",
    no_args_is_help=True,
)

DataArg = Annotated[Path, typer.Argument(help="Captioned picture folder (metadata.jsonl or .txt captions).")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoint/, logs/, results).")]
SizeOpt = Annotated[str, typer.Option(help="Model size preset: builtin (shipped) or tiny (tests).")]
StepsOpt = Annotated[int, typer.Option(help="Stop after this many optimizer steps.")]
MinutesOpt = Annotated[float | None, typer.Option(help="Stop after this many minutes (lr curve follows).")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")]
CpuOpt = Annotated[bool, typer.Option(help="Train on the CPU even when a GPU is there.")]
InitOpt = Annotated[Path | None, typer.Option(help="Start from this trained folder (fine-tune).")]


@train_app.command("vae", no_args_is_help=True)
@user_errors
def vae_command(
    data: DataArg,
    out: OutOpt,
    size: SizeOpt = "builtin",
    batch_size: Annotated[int, typer.Option(help="Pictures per step and process.")] = 64,
    steps: StepsOpt = 20_000,
    minutes: MinutesOpt = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-4,
    warmup: Annotated[int, typer.Option(help="Warm-up steps.")] = 200,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 1000,
    log_every: Annotated[int, typer.Option(help="Steps between log lines.")] = 50,
    seed: int = 0,
    resume: ResumeOpt = False,
    cpu: CpuOpt = False,
    init: InitOpt = None,
    decoder_only: Annotated[bool, typer.Option(help="Fine-tune only --init's decoder.")] = False,
) -> None:
    """Train the VAE; writes OUT/vae (fp16 shards, scaling_factor set) and its held-out PSNR."""
    from keypaint.training.vae import VaeTrainConfig, train_vae

    train_vae(VaeTrainConfig(
        data=data, out=out, size=size, batch_size=batch_size, max_steps=steps, max_minutes=minutes, lr=lr,
        warmup_steps=warmup, checkpoint_every=checkpoint_every, log_every=log_every, seed=seed, resume=resume,
        cpu=cpu, init=init, decoder_only=decoder_only,
    ))


@train_app.command("unet", no_args_is_help=True)
@user_errors
def unet_command(
    data: DataArg,
    vae: Annotated[Path, typer.Option(help="Trained VAE folder (RUN/vae of `keypaint train vae`).")],
    out: OutOpt,
    size: SizeOpt = "builtin",
    batch_size: Annotated[int, typer.Option(help="Latents per step and process.")] = 256,
    steps: StepsOpt = 50_000,
    minutes: MinutesOpt = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-4,
    warmup: Annotated[int, typer.Option(help="Warm-up steps.")] = 500,
    prediction: Annotated[str, typer.Option(help="epsilon or v_prediction.")] = "epsilon",
    min_snr: Annotated[float, typer.Option(help="Min-SNR-gamma loss weighting; 0 turns it off.")] = 5.0,
    caption_drop: Annotated[float, typer.Option(help="Share of empty captions (for CFG).")] = 0.1,
    style_drop: Annotated[float, typer.Option(help="Share of captions without the style keyword.")] = 0.0,
    all_tags: Annotated[
        float, typer.Option(help="Share of captions with every tag (as keyword expansion writes them).")
    ] = 0.0,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 2000,
    log_every: Annotated[int, typer.Option(help="Steps between log lines.")] = 100,
    seed: int = 0,
    resume: ResumeOpt = False,
    cpu: CpuOpt = False,
    init: InitOpt = None,
) -> None:
    """Train the U-Net on cached latents; writes OUT/unet (fp16 shards) and OUT/scheduler."""
    from keypaint.training.common import TrainingError
    from keypaint.training.unet import UNetTrainConfig, train_unet

    if prediction not in ("epsilon", "v_prediction"):
        raise TrainingError(f"--prediction must be epsilon or v_prediction, got {prediction!r}")
    for name, share in (("caption-drop", caption_drop), ("style-drop", style_drop), ("all-tags", all_tags)):
        if not 0.0 <= share <= 1.0:
            raise TrainingError(f"--{name} is a share between 0 and 1, got {share}")
    train_unet(UNetTrainConfig(
        data=data, vae=vae, out=out, size=size, batch_size=batch_size, max_steps=steps, max_minutes=minutes,
        lr=lr, warmup_steps=warmup, prediction=prediction, min_snr_gamma=min_snr or None,  # type: ignore[arg-type]
        caption_drop=caption_drop, style_drop=style_drop, all_tags=all_tags,
        checkpoint_every=checkpoint_every, log_every=log_every, seed=seed,
        resume=resume, cpu=cpu, init=init,
    ))


@train_app.command("lcm", no_args_is_help=True)
@user_errors
def lcm_command(
    data: DataArg,
    vae: Annotated[Path, typer.Option(help="The teacher's VAE folder (diffusers format).")],
    init: Annotated[Path, typer.Option(help="Teacher U-Net folder (e.g. the built-in weights/unet).")],
    out: OutOpt,
    batch_size: Annotated[int, typer.Option(help="Latents per step and process.")] = 256,
    steps: StepsOpt = 4000,
    minutes: MinutesOpt = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate of the LoRA weights.")] = 1e-4,
    warmup: Annotated[int, typer.Option(help="Warm-up steps.")] = 100,
    rank: Annotated[int, typer.Option(help="LoRA rank (alpha = rank).")] = 32,
    w_min: Annotated[float, typer.Option(help="Lowest teacher guidance scale (diffusers' scale).")] = 5.0,
    w_max: Annotated[float, typer.Option(help="Highest teacher guidance scale.")] = 9.0,
    ddim_timesteps: Annotated[int, typer.Option(help="DDIM solver steps over the 1000-step schedule.")] = 50,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 1000,
    log_every: Annotated[int, typer.Option(help="Steps between log lines.")] = 100,
    seed: int = 0,
    resume: ResumeOpt = False,
    cpu: CpuOpt = False,
) -> None:
    """Distil the teacher U-Net into an LCM-LoRA (4-step sampling); writes OUT/lcm_lora.safetensors."""
    from keypaint.training.lcm import LcmTrainConfig, train_lcm

    train_lcm(LcmTrainConfig(
        data=data, vae=vae, init=init, out=out, batch_size=batch_size, max_steps=steps, max_minutes=minutes,
        lr=lr, warmup_steps=warmup, rank=rank, w_min=w_min, w_max=w_max, num_ddim_timesteps=ddim_timesteps,
        checkpoint_every=checkpoint_every, log_every=log_every, seed=seed, resume=resume, cpu=cpu,
    ))


@train_app.command("controlnet", no_args_is_help=True)
@user_errors
def controlnet_command(
    data: DataArg,
    out: OutOpt,
    kind: Annotated[str, typer.Option(help="adapter (T2I-Adapter, once per picture) or controlnet.")
                    ] = "adapter",
    unet: Annotated[Path | None, typer.Option(help="Frozen U-Net folder [default: the built-in one].")
                    ] = None,
    vae: Annotated[Path | None, typer.Option(help="Its VAE folder [default: the built-in one].")] = None,
    adapter_type: Annotated[str, typer.Option(help="full_adapter or light_adapter.")] = "full_adapter",
    pictures: Annotated[int | None, typer.Option(min=1, help="Train on a seeded sample of N pictures.")
                        ] = None,
    batch_size: Annotated[int, typer.Option(help="Pictures per step and process.")] = 32,
    steps: StepsOpt = 2000,
    minutes: MinutesOpt = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-4,
    warmup: Annotated[int, typer.Option(help="Warm-up steps.")] = 100,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 500,
    log_every: Annotated[int, typer.Option(help="Steps between log lines.")] = 50,
    seed: int = 0,
    resume: ResumeOpt = False,
    cpu: CpuOpt = False,
) -> None:
    """Train a sketch control (scribble and edge maps of DATA) for a frozen U-Net; writes OUT/KIND."""
    from keypaint.training.control import ControlTrainConfig, train_control

    defaults = ControlTrainConfig(data=data, out=out)
    train_control(ControlTrainConfig(
        data=data, out=out, kind=kind, unet=unet or defaults.unet, vae=vae or defaults.vae,  # type: ignore[arg-type]
        adapter_type=adapter_type, pictures=pictures, batch_size=batch_size, max_steps=steps,
        max_minutes=minutes, lr=lr, warmup_steps=warmup, checkpoint_every=checkpoint_every,
        log_every=log_every, seed=seed, resume=resume, cpu=cpu,
    ))


if importlib.util.find_spec("keypaint.cli.train_scorer") is not None:
    from keypaint.cli.train_scorer import scorer_command

    train_app.command("scorer", no_args_is_help=True)(scorer_command)


@user_errors
def export_command(
    model: Annotated[str, typer.Argument(help="builtin, a model folder name or a path.")],
    dest: Annotated[Path, typer.Argument(help="Folder to write (diffusers layout, text encoder included).")],
    overwrite: Annotated[bool, typer.Option(help="Replace DEST if it exists.")] = False,
    fp32: Annotated[bool, typer.Option(help="Save float32 weights instead of float16.")] = False,
    allow_pickle: AllowPickle = False,
) -> None:
    """Write MODEL as a standalone diffusers folder that `DiffusionPipeline.from_pretrained` loads.

    With --allow-pickle this converts a .ckpt/.pt checkpoint (weights only) to safetensors once.
    """
    from keypaint.builtin.export import check_destination
    from keypaint.models.preflight import check_model

    check_destination(dest, overwrite=overwrite)  # before the model loads
    check_model(model, allow_pickle=allow_pickle)  # a bad model fails before PyTorch is imported
    import torch

    from keypaint.builtin import MODEL
    from keypaint.builtin.export import export_model
    from keypaint.models.loader import load_model

    loaded = load_model(model, allow_pickle=allow_pickle, builtin=MODEL)
    path = export_model(loaded, dest, overwrite=overwrite, dtype=torch.float32 if fp32 else torch.float16)
    typer.echo(f"exported {loaded.name} to {path}")


def main() -> None:
    """Entry point for `accelerate launch -m keypaint.cli.train_cmd ...` / `torchrun -m ...`."""
    train_app()


if __name__ == "__main__":
    main()
