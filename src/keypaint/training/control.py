"""`keypaint train controlnet`: a sketch control for a frozen U-Net (the built-in one by default).

Two kinds, both from diffusers: a T2I-Adapter (Mou et al. 2023, "T2I-Adapter: Learning Adapters to Dig out
More Controllable Ability for Text-to-Image Diffusion Models"; run once per picture, its features added to
the U-Net's encoder at every step) or a ControlNet (Zhang et al. 2023, "Adding Conditional Control to
Text-to-Image Diffusion Models"; `ControlNetModel.from_unet`, run at every step). Only the control model
learns, with the U-Net's own loss: the noise prediction, min-SNR-5 weighted, timesteps drawn
t = (1 - u^3) T so that the noisy steps, where the layout is decided, come up more often (as diffusers'
T2I-Adapter SDXL training script does).

The control maps are made on the fly from the training pictures by keypaint's own preprocessors
(`core.control_maps`: scribble or lineart, sometimes canny) at a random threshold, their strokes made
thinner or thicker at random, so that a hand sketch through `--control-preprocess scribble` looks like
what the model was trained on. The result, OUT/<kind>/, is a config.json beside compact int8 weights
(`models.compact`), the form the built-in model ships in (`builtin/weights/control/keypaint-sketch`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, T2IAdapter, UNet2DConditionModel

from keypaint.builtin import WEIGHTS_DIR, load_part, part_sha256
from keypaint.builtin.architecture import TRAIN_SCHEDULE
from keypaint.builtin.text_encoder import load_text_encoder
from keypaint.core.control_maps import canny, lineart_standard, scribble_xdog
from keypaint.data.captions import augment
from keypaint.models.compact import FILENAME as COMPACT
from keypaint.models.compact import save_compact
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
from keypaint.training.data import load_pixels, load_split
from keypaint.training.latents import cached_latents
from keypaint.training.loop import Cadence, Display, StepResult, TrainingLoop
from keypaint.training.unet import snr_weight

ControlKind = Literal["adapter", "controlnet"]


@dataclass
class ControlTrainConfig:
    data: Path  # captioned picture folder (the built-in model's: /data/emoji)
    out: Path  # run folder: checkpoint/, logs/, latents.safetensors, <kind>/, report.json
    kind: ControlKind = "adapter"  # T2I-Adapter (cheap: once per picture) or ControlNet (every step)
    unet: Path = WEIGHTS_DIR / "unet"  # the frozen U-Net (diffusers folder, compact or plain weights)
    vae: Path = WEIGHTS_DIR / "vae"  # its VAE, to encode the training pictures once
    adapter_type: str = "full_adapter"  # diffusers' T2IAdapter: full_adapter or light_adapter
    adapter_blocks: int = 2  # residual blocks per level of the T2I-Adapter
    pictures: int | None = None  # train on a seeded sample of N pictures (None: all)
    batch_size: int = 32  # per process
    max_steps: int = 2000
    max_minutes: float | None = None  # wall-clock budget; the learning-rate curve follows it too
    lr: float = 2e-4
    warmup_steps: int = 100
    min_snr_gamma: float | None = 5.0
    caption_drop: float = 0.1  # empty captions, so the control also steers the unconditional pass
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 0
    resume: bool = False
    cpu: bool = False
    workers: int = 2


def sketch_map(rgb: np.ndarray, rng: random.Random) -> np.ndarray:
    """A white-on-black map of one training picture as a user's sketch might come out of a preprocessor:
    scribble (half the time), lineart or canny at a random threshold, strokes 1-4 px."""
    import cv2

    pick = rng.random()
    if pick < 0.5:
        lines = scribble_xdog(rgb, rng.uniform(16.0, 64.0))
    elif pick < 0.8:
        lines = np.where(lineart_standard(rgb) > rng.uniform(24.0, 96.0), 255, 0).astype(np.uint8)
    else:
        low = rng.uniform(50.0, 150.0)
        lines = canny(rgb, low, 2 * low)
    width = rng.choice((1, 1, 2, 3))  # stroke thickness jitter: 1 keeps the preprocessor's lines
    if width > 1:
        lines = cv2.dilate(lines, np.ones((width, width), np.uint8))
    return lines


def map_batch(pixels: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """(B, 3, H, W) uint8 pictures -> (B, 3, H, W) maps in [0, 1], as diffusers' control pipelines feed
    an RGB map (white lines on black)."""
    maps = [sketch_map(np.ascontiguousarray(p.permute(1, 2, 0).numpy()), rng) for p in pixels]
    stacked = torch.from_numpy(np.stack(maps)).float().div(255.0)
    return stacked[:, None].expand(-1, 3, -1, -1).contiguous()


def build_control(kind: ControlKind, unet: UNet2DConditionModel, vae_factor: int, adapter_type: str,
                  blocks: int) -> torch.nn.Module:
    """A fresh control model shaped for `unet`: its feature widths are the U-Net's block widths."""
    if kind == "adapter":
        return T2IAdapter(in_channels=3, channels=list(unet.config.block_out_channels), num_res_blocks=blocks,
                          downscale_factor=vae_factor, adapter_type=adapter_type)
    return ControlNetModel.from_unet(unet, conditioning_channels=3)


def predict(kind: ControlKind, control: torch.nn.Module, unet: UNet2DConditionModel, zt: torch.Tensor,
            t: torch.Tensor, context: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """The frozen U-Net's noise prediction with the control model's residuals added, as diffusers'
    StableDiffusionAdapterPipeline / StableDiffusionControlNetPipeline add them."""
    if kind == "adapter":
        features = list(control(maps))
        return unet(zt, t, context, down_intrablock_additional_residuals=features).sample
    down, mid = control(zt, t, context, controlnet_cond=maps, return_dict=False)
    return unet(zt, t, context, down_block_additional_residuals=down,
                mid_block_additional_residual=mid).sample


def train_control(cfg: ControlTrainConfig, on_step: Callable[[int], None] | None = None) -> dict:
    """Train (or resume) a sketch control run; returns the report also written to OUT/report.json."""
    if cfg.kind not in ("adapter", "controlnet"):
        raise TrainingError(f"--kind must be adapter or controlnet, got {cfg.kind!r}")
    if cfg.adapter_type not in ("full_adapter", "light_adapter"):
        raise TrainingError(f"--adapter-type must be full_adapter or light_adapter, got {cfg.adapter_type!r}")
    accelerator = make_accelerator(cfg.out, cpu=cfg.cpu)
    device = accelerator.device
    for part in (cfg.unet, cfg.vae):
        if not (part / "config.json").is_file():
            raise TrainingError(f"{part}: no model folder here (config.json missing)")
    cfg.out.mkdir(parents=True, exist_ok=True)
    ckpt = prepare_run_dir(cfg.out, cfg.resume)
    unet = load_part(UNet2DConditionModel, cfg.unet, torch.float32).to(device).requires_grad_(False)
    vae = load_part(AutoencoderKL, cfg.vae, torch.float32).eval()
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    image_size = int(unet.config.sample_size) * factor
    scaling = float(vae.config.scaling_factor)
    records = load_split(cfg.data, None)
    if cfg.pictures is not None and cfg.pictures < len(records):  # a seeded sample of every style
        keep = sorted(random.Random(cfg.seed).sample(range(len(records)), cfg.pictures))
        records = [records[i] for i in keep]
    mean, std = cached_latents(cfg.out, cfg.vae, accelerator, records, vae, image_size, cfg.workers)
    pixels = load_pixels(records, image_size, cfg.workers)  # uint8, for the maps made at every step
    del vae
    accelerator.print(f"{len(records)} pictures {image_size} px, latents {tuple(mean.shape[1:])}", flush=True)

    tokenizer, text_encoder = load_text_encoder(device, torch.float32)
    torch.manual_seed(cfg.seed)
    control = build_control(cfg.kind, unet, factor, cfg.adapter_type, cfg.adapter_blocks)
    if ckpt:
        control.load_state_dict(ckpt.model)
    control.train()
    ema = make_ema(control, cfg.ema_decay)
    optimizer = torch.optim.AdamW(control.parameters(), lr=cfg.lr, weight_decay=0.01)
    if ckpt:
        load_ema(ema, control, ckpt.ema, ckpt.state["ema"])
        optimizer.load_state_dict(ckpt.optimizer)
    model, optimizer = accelerator.prepare(control, optimizer)
    ema.to(device)
    noise_scheduler = DDPMScheduler(**TRAIN_SCHEDULE)
    alphas = noise_scheduler.alphas_cumprod.to(device)
    total_t = noise_scheduler.config.num_train_timesteps
    schedule = Schedule(cfg.max_steps, cfg.max_minutes, cfg.lr, cfg.warmup_steps)
    loop = TrainingLoop(f"controlnet-{cfg.kind}", accelerator,
                        Cadence(cfg.max_steps, cfg.checkpoint_every, cfg.log_every, cfg.max_minutes),
                        Display(f"controlnet-{cfg.kind}"), resume=ckpt, tracker_config=config_strings(cfg))
    gen, rng = random_streams(cfg.seed, loop.step, accelerator.process_index)

    def step(_: int) -> StepResult:
        idx = torch.randint(len(mean), (cfg.batch_size,), generator=gen)
        captions = [augment(records[i], rng, cfg.caption_drop) for i in idx.tolist()]
        maps = map_batch(pixels[idx], rng).to(device)
        # z_0 ~ the VAE's posterior, scaled to unit variance as SD does
        z = (mean[idx].float() + std[idx].float() * torch.randn(mean[idx].shape, generator=gen)) * scaling
        z = z.to(device)
        noise = torch.randn(z.shape, generator=gen).to(device)
        t = ((1 - torch.rand(len(z), generator=gen) ** 3) * total_t).long().clamp(0, total_t - 1).to(device)
        # Forward chain q(z_t | z_0): z_t = sqrt(a_t) z_0 + sqrt(1 - a_t) eps (Ho et al. 2020).
        zt = noise_scheduler.add_noise(z, noise, t)
        with torch.no_grad(), accelerator.autocast():
            context = encode_plain(tokenizer, text_encoder, captions, ModelKind.KEYPAINT)
        with accelerator.autocast():
            pred = predict(cfg.kind, model, unet, zt, t, context, maps)
        per_sample = F.mse_loss(pred.float(), noise, reduction="none").mean(dim=(1, 2, 3))
        loss = (per_sample * snr_weight(alphas, t, cfg.min_snr_gamma, "epsilon")).mean()
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(accelerator.unwrap_model(model).parameters())
        return StepResult(loss, len(z))

    def save(state: dict) -> None:
        write_checkpoint(cfg.out, accelerator.unwrap_model(model), ema, optimizer, state)

    end = loop.run(optimizer, schedule, step, save, on_step=on_step,
                   extra_state={"config": config_strings(cfg)})

    def report() -> dict:
        final = accelerator.unwrap_model(model)
        ema.copy_to(final.parameters())
        folder = cfg.out / cfg.kind
        folder.mkdir(exist_ok=True)
        final.save_config(folder)
        size = save_compact(final.state_dict(), folder / COMPACT, {"keypaint": f"sketch-{cfg.kind}"})
        return {"kind": f"controlnet-{cfg.kind}", "steps": end.step, "minutes": end.elapsed_s / 60,
                "loss": end.loss, "images_per_s": end.rate, "pictures": len(records),
                "batch_per_process": cfg.batch_size, "parameters": sum(p.numel() for p in final.parameters()),
                "compact_bytes": size, "base_unet_sha256": part_sha256(cfg.unet),
                "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}

    return loop.finish(cfg.out, report)
