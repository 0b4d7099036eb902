"""`keypaint train unet`: train the built-in U-Net on cached VAE latents and MiniLM caption states.

Recipe: SD's scaled_linear schedule (0.00085..0.012, 1000 steps), epsilon prediction, min-SNR-5 loss
weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy"), captions
varied by `keypaint.data.captions.augment` (shuffled keywords, subsampled tags, 10% dropped for
classifier-free guidance) and encoded by `keypaint.prompts.encode.encode_plain`, as the Painter encodes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from tqdm.auto import tqdm

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
    Throughput,
    TrainingError,
    load_ema,
    make_accelerator,
    make_ema,
    prepare_run_dir,
    start_run,
    write_checkpoint,
)
from keypaint.training.data import load_split
from keypaint.training.latents import cached_latents, draw_batch
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
    step, elapsed0, gen, rng = start_run("unet", cfg, ckpt, accelerator)

    def state(loss: float) -> dict:
        return {"kind": "unet", "step": step, "elapsed_s": elapsed0 + time.perf_counter() - start,
                "loss": loss, "model_size": size_dict(size), "scaling_factor": scaling,
                "config": {k: str(v) for k, v in asdict(cfg).items()}}

    start, meter, loss_sum, loss_n, rate = time.perf_counter(), Throughput(), 0.0, 0, 0.0
    loss_value = float("nan")
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not accelerator.is_main_process, mininterval=10,
               desc="unet")
    varied = {"caption_drop": cfg.caption_drop, "style_drop": cfg.style_drop, "all_tags": cfg.all_tags}
    while step < cfg.max_steps:
        elapsed = elapsed0 + time.perf_counter() - start
        if cfg.max_minutes and elapsed >= 60 * cfg.max_minutes:
            break
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr_at(step, elapsed)
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
        step += 1
        meter.add(len(z) * accelerator.num_processes)
        loss_sum, loss_n = loss_sum + loss.detach(), loss_n + 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            loss_value, loss_sum, loss_n, rate = float(loss_sum) / loss_n, 0.0, 0, meter.rate()
            accelerator.log({"loss": loss_value, "lr": optimizer.param_groups[0]["lr"], "images_per_s": rate},
                            step=step)
            accelerator.print(f"unet step {step} loss {loss_value:.5f} {rate:.0f} img/s", flush=True)
            if not math.isfinite(loss_value):
                raise TrainingError(f"loss is {loss_value} at step {step}; the last good checkpoint was kept")
        if step % cfg.checkpoint_every == 0 and accelerator.is_main_process:
            write_checkpoint(cfg.out, accelerator.unwrap_model(model), ema, optimizer, state(loss_value))
        if on_step is not None:
            on_step(step)
    bar.close()
    accelerator.wait_for_everyone()
    report: dict = {}
    if accelerator.is_main_process:
        if loss_n:
            loss_value, rate = float(loss_sum) / loss_n, rate or meter.rate()
        final_state = state(loss_value)
        write_checkpoint(cfg.out, accelerator.unwrap_model(model), ema, optimizer, final_state)
        final = build_unet(size, latent_channels=mean.shape[1])
        ema.copy_to(final.parameters())
        final.to(torch.float16).save_pretrained(cfg.out / "unet", max_shard_size=SHARD)
        scheduler = build_scheduler()
        if cfg.prediction != "epsilon":
            scheduler.register_to_config(prediction_type=cfg.prediction)
        scheduler.save_pretrained(cfg.out / "scheduler")
        report = {"kind": "unet", "steps": step, "minutes": final_state["elapsed_s"] / 60, "loss": loss_value,
                  "images_per_s": rate, "pictures": len(records), "batch_per_process": cfg.batch_size,
                  "processes": accelerator.num_processes, "prediction": cfg.prediction,
                  "parameters": sum(p.numel() for p in final.parameters()), "model_size": size_dict(size),
                  "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}
        (cfg.out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
        print(f"unet done: {json.dumps(report)}", flush=True)
    accelerator.end_training()
    return report
