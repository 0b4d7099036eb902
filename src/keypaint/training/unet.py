"""`keypaint train unet`: train the built-in U-Net on cached VAE latents and MiniLM caption states.

Recipe: SD's scaled_linear schedule (0.00085..0.012, 1000 steps), epsilon prediction, min-SNR-5 loss
weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy"), captions
varied by `keypaint.data.captions.augment` (shuffled keywords, subsampled tags, 10% dropped for
classifier-free guidance) and encoded by `keypaint.prompts.encode.encode_plain`, as the Painter encodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

from keypaint.builtin.architecture import (
    TRAIN_SCHEDULE,
    build_scheduler,
    build_unet,
    size_dict,
    size_preset,
    unet_size_from,
)
from keypaint.builtin.text_encoder import load_text_encoder
from keypaint.models.loaded import ModelKind
from keypaint.prompts.encode import encode_plain
from keypaint.training.common import (
    Schedule,
    TrainingError,
    config_strings,
    load_ema,
    make_accelerator,
    make_ema,
    prepare_run_dir,
    random_streams,
    write_checkpoint,
)
from keypaint.training.data import load_split
from keypaint.training.latents import cached_latents, draw_batch
from keypaint.training.loop import Cadence, Display, StepResult, TrainingLoop
from keypaint.training.vae import SHARD


@dataclass
class UNetTrainConfig:
    data: Path  # captioned picture folder (the same one the VAE was trained on, or any other)
    vae: Path  # folder of the trained VAE (diffusers format, e.g. RUN/vae from `keypaint train vae`)
    out: Path  # run folder: checkpoint/, logs/, latents.safetensors, unet/, scheduler/, report.json
    size: str = "builtin"  # model size preset (keypaint.builtin.architecture.SIZES)
    batch_size: int = 256  # per process
    max_steps: int = 50_000
    max_minutes: float | None = None  # wall-clock budget; the learning-rate curve follows it too
    lr: float = 3e-4
    warmup_steps: int = 500
    prediction: Literal["epsilon", "v_prediction"] = "epsilon"
    min_snr_gamma: float | None = 5.0  # None: plain MSE
    caption_drop: float = 0.1  # share of empty captions (classifier-free guidance)
    style_drop: float = 0.0  # share of captions without their style keyword
    all_tags: float = 0.0  # share of captions with every tag (as keyword expansion writes them)
    ema_decay: float = 0.9995
    checkpoint_every: int = 2000
    log_every: int = 100
    seed: int = 0
    resume: bool = False
    cpu: bool = False
    workers: int = 8
    init: Path | None = None  # start from this trained U-Net folder (fine-tuning) instead of random weights


def snr_weight(alphas_cumprod: torch.Tensor, t: torch.Tensor, gamma: float | None,
               prediction: str) -> torch.Tensor:
    """Min-SNR-gamma: w = min(SNR, gamma) / SNR for epsilon, / (SNR + 1) for v; SNR = a_t / (1 - a_t)."""
    if gamma is None:
        return torch.ones_like(t, dtype=torch.float32)
    a = alphas_cumprod[t].float()
    snr = a / (1 - a)
    clipped = snr.clamp(max=gamma)
    return clipped / (snr + 1) if prediction == "v_prediction" else clipped / snr


def train_unet(cfg: UNetTrainConfig, on_step: Callable[[int], None] | None = None) -> dict:
    """Train (or resume) a U-Net run; returns the report also written to OUT/report.json."""
    accelerator = make_accelerator(cfg.out, cpu=cfg.cpu)
    device = accelerator.device
    cfg.out.mkdir(parents=True, exist_ok=True)
    ckpt = prepare_run_dir(cfg.out, cfg.resume)
    size = unet_size_from(ckpt.state["model_size"]) if ckpt else size_preset(cfg.size)[1]
    if not (cfg.vae / "config.json").is_file():
        raise TrainingError(f"{cfg.vae}: no trained VAE here (config.json missing); run `keypaint train vae`")
    vae = AutoencoderKL.from_pretrained(str(cfg.vae), torch_dtype=torch.float32).eval()
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    image_size = size.sample_size * factor
    scaling = float(vae.config.scaling_factor)
    records = load_split(cfg.data, None)
    mean, std = cached_latents(cfg.out, cfg.vae, accelerator, records, vae, image_size, cfg.workers)
    del vae
    if mean.shape[-1] != size.sample_size:
        raise TrainingError(f"latents are {mean.shape[-1]} px but the U-Net expects {size.sample_size}")
    accelerator.print(f"{len(records)} latents {tuple(mean.shape[1:])}, scaling {scaling:.4f}", flush=True)

    tokenizer, text_encoder = load_text_encoder(device, torch.float32)
    torch.manual_seed(cfg.seed)
    unet = build_unet(size, latent_channels=mean.shape[1])
    if ckpt:
        unet.load_state_dict(ckpt.model)
    elif cfg.init is not None:
        init = UNet2DConditionModel.from_pretrained(str(cfg.init), torch_dtype=torch.float32)
        unet.load_state_dict(init.state_dict())
    unet.train()
    if device.type == "cuda":
        unet.to(memory_format=torch.channels_last)
    ema = make_ema(unet, cfg.ema_decay)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.01)
    if ckpt:
        load_ema(ema, unet, ckpt.ema, ckpt.state["ema"])
        optimizer.load_state_dict(ckpt.optimizer)
    model, optimizer = accelerator.prepare(unet, optimizer)
    ema.to(device)
    noise_scheduler = DDPMScheduler(**{**TRAIN_SCHEDULE, "prediction_type": cfg.prediction})
    alphas = noise_scheduler.alphas_cumprod.to(device)
    schedule = Schedule(cfg.max_steps, cfg.max_minutes, cfg.lr, cfg.warmup_steps)
    loop = TrainingLoop("unet", accelerator, Cadence(cfg.max_steps, cfg.checkpoint_every, cfg.log_every,
                                                     cfg.max_minutes),
                        Display("unet"), resume=ckpt, tracker_config=config_strings(cfg))
    gen, rng = random_streams(cfg.seed, loop.step, accelerator.process_index)
    varied = {"caption_drop": cfg.caption_drop, "style_drop": cfg.style_drop, "all_tags": cfg.all_tags}

    def step(_: int) -> StepResult:
        z, captions = draw_batch(mean, std, records, scaling, cfg.batch_size, gen, rng, **varied)
        noise = torch.randn_like(z)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(z),), device=device)
        # Forward chain q(z_t | z_0): z_t = sqrt(a_t) z_0 + sqrt(1 - a_t) eps (Ho et al. 2020).
        zt = noise_scheduler.add_noise(z, noise, t)
        target = noise if cfg.prediction == "epsilon" else noise_scheduler.get_velocity(z, noise, t)
        with torch.no_grad(), accelerator.autocast():
            context = encode_plain(tokenizer, text_encoder, captions, ModelKind.KEYPAINT)
        if device.type == "cuda":
            zt = zt.contiguous(memory_format=torch.channels_last)
        with accelerator.autocast():
            pred = model(zt, t, context).sample
        per_sample = F.mse_loss(pred.float(), target, reduction="none").mean(dim=(1, 2, 3))
        loss = (per_sample * snr_weight(alphas, t, cfg.min_snr_gamma, cfg.prediction)).mean()
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(accelerator.unwrap_model(model).parameters())
        return StepResult(loss, len(z))

    def save(state: dict) -> None:
        write_checkpoint(cfg.out, accelerator.unwrap_model(model), ema, optimizer, state)

    end = loop.run(optimizer, schedule, step, save, on_step=on_step, extra_state={
        "model_size": size_dict(size), "scaling_factor": scaling, "config": config_strings(cfg)})

    def report() -> dict:
        final = build_unet(size, latent_channels=mean.shape[1])
        ema.copy_to(final.parameters())
        final.to(torch.float16).save_pretrained(cfg.out / "unet", max_shard_size=SHARD)
        scheduler = build_scheduler()
        if cfg.prediction != "epsilon":
            scheduler.register_to_config(prediction_type=cfg.prediction)
        scheduler.save_pretrained(cfg.out / "scheduler")
        return {"kind": "unet", "steps": end.step, "minutes": end.elapsed_s / 60, "loss": end.loss,
                "images_per_s": end.rate, "pictures": len(records), "batch_per_process": cfg.batch_size,
                "processes": accelerator.num_processes, "prediction": cfg.prediction,
                "parameters": sum(p.numel() for p in final.parameters()), "model_size": size_dict(size),
                "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}

    return loop.finish(cfg.out, report)
