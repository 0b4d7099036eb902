"""`keypaint train vae`: train the built-in AutoencoderKL (f=8, 4 latent channels) on a picture folder.

Loss: MSE + L1 on pixels plus a tiny KL term (SD's VAE recipe without the perceptual and GAN terms, which
need pretrained networks nobody can download here). Ends by measuring the latents' std for
`scaling_factor` (as SD did: 1 / std), the held-out PSNR, and saving fp16 safetensors shards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.training_utils import EMAModel

from keypaint.builtin.architecture import VaeSize, build_vae, size_dict, size_preset, vae_size_from
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
from keypaint.training.data import heldout_records, load_pixels, load_split, to_model_range
from keypaint.training.loop import Cadence, Display, StepResult, TrainingLoop

SHARD = "14MB"  # weights live in git (and come back from the GPU machines) in files under 15 MB


@dataclass
class VaeTrainConfig:
    data: Path  # captioned picture folder (imagefolder or .txt captions)
    out: Path  # run folder: checkpoint/, logs/, vae/ (the result), report.json
    size: str = "builtin"  # model size preset (keypaint.builtin.architecture.SIZES)
    batch_size: int = 64  # per process
    max_steps: int = 20_000
    max_minutes: float | None = None  # wall-clock budget; the learning-rate curve follows it too
    lr: float = 3e-4
    warmup_steps: int = 200
    l1_weight: float = 0.5  # pixel L1 beside MSE: sharper edges at the same PSNR
    kl_weight: float = 1e-6  # per-element KL; keeps the latent near N(0, 1) without blurring
    ema_decay: float = 0.999
    checkpoint_every: int = 1000  # steps
    log_every: int = 50  # steps
    seed: int = 0
    resume: bool = False
    cpu: bool = False  # force CPU even when a GPU is there
    workers: int = 8  # threads decoding pictures at start
    init: Path | None = None  # start from this trained VAE folder (fine-tuning) instead of random weights
    decoder_only: bool = False  # train decoder + post_quant_conv only: latents (and U-Nets) stay valid


class VaeWithKl(torch.nn.Module):
    """encode -> sample -> decode in one forward, so DDP sees every parameter used in one call."""

    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        posterior = self.vae.encode(x).latent_dist
        recon = self.vae.decode(posterior.sample()).sample
        return recon, posterior.kl().mean() / posterior.mean[0].numel()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of pictures in [-1, 1], over the whole batch: 10 log10(peak^2 / MSE), peak = 2."""
    mse = F.mse_loss(a.float().clamp(-1, 1), b.float()).item()
    return 10.0 * math.log10(4.0 / max(mse, 1e-12))


@torch.no_grad()
def reconstruct_psnr(vae: AutoencoderKL, pixels: torch.Tensor, batch: int = 64) -> float:
    """PSNR of decode(encode(x).mode()) over `pixels` (uint8), pooled MSE, in fp32."""
    device = next(vae.parameters()).device
    total, n = 0.0, 0
    for i in range(0, len(pixels), batch):
        x = to_model_range(pixels[i:i + batch].to(device))
        recon = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
        total += F.mse_loss(recon.float(), x, reduction="sum").item()
        n += x.numel()
    return 10.0 * math.log10(4.0 / max(total / max(n, 1), 1e-12))


@torch.no_grad()
def latent_std(vae: AutoencoderKL, pixels: torch.Tensor, batch: int = 64, limit: int = 2048) -> float:
    """Std of sampled latents over up to `limit` pictures; SD sets scaling_factor = 1 / this."""
    device = next(vae.parameters()).device
    zs = [vae.encode(to_model_range(pixels[i:i + batch].to(device))).latent_dist.sample().float().cpu()
          for i in range(0, min(len(pixels), limit), batch)]
    return float(torch.cat(zs).std())


def train_vae(cfg: VaeTrainConfig, on_step: Callable[[int], None] | None = None) -> dict:
    """Train (or resume) a VAE run; returns the report also written to OUT/report.json."""
    accelerator = make_accelerator(cfg.out, cpu=cfg.cpu)
    ckpt = prepare_run_dir(cfg.out, cfg.resume)
    size = vae_size_from(ckpt.state["model_size"]) if ckpt else size_preset(cfg.size)[0]
    records = load_split(cfg.data, None)
    pixels = load_pixels(records, size.image_size, cfg.workers).to(accelerator.device)
    accelerator.print(f"{len(records)} pictures of {size.image_size} px from {cfg.data}")

    torch.manual_seed(cfg.seed)
    vae = build_vae(size)
    if ckpt:
        vae.load_state_dict(ckpt.model)
    elif cfg.init is not None:
        init = AutoencoderKL.from_pretrained(str(cfg.init), torch_dtype=torch.float32)
        vae.load_state_dict(init.state_dict())
    if cfg.decoder_only:
        if cfg.init is None:
            raise TrainingError("--decoder-only fine-tunes a trained VAE: pass --init VAE_FOLDER")
        vae.encoder.requires_grad_(False)
        if vae.quant_conv is not None:
            vae.quant_conv.requires_grad_(False)
    vae.train()
    if accelerator.device.type == "cuda":
        vae.to(memory_format=torch.channels_last)
    ema = make_ema(vae, cfg.ema_decay)
    trainable = [p for p in vae.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    if ckpt:
        load_ema(ema, vae, ckpt.ema, ckpt.state["ema"])
        optimizer.load_state_dict(ckpt.optimizer)
    model, optimizer = accelerator.prepare(VaeWithKl(vae), optimizer)
    ema.to(accelerator.device)
    schedule = Schedule(cfg.max_steps, cfg.max_minutes, cfg.lr, cfg.warmup_steps)
    loop = TrainingLoop("vae", accelerator, Cadence(cfg.max_steps, cfg.checkpoint_every, cfg.log_every,
                                                    cfg.max_minutes),
                        Display("vae"), resume=ckpt, tracker_config=config_strings(cfg))
    gen, _ = random_streams(cfg.seed, loop.step, accelerator.process_index)
    last: dict[str, torch.Tensor] = {}  # the latest batch and its reconstruction, for the log's PSNR

    def step(_: int) -> StepResult:
        idx = torch.randint(len(pixels), (cfg.batch_size,), generator=gen).to(accelerator.device)
        x = to_model_range(pixels[idx])
        flip = torch.rand(len(x), generator=gen).to(accelerator.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if accelerator.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with accelerator.autocast():
            recon, kl = model(x)
        recon = recon.float()
        loss = F.mse_loss(recon, x) + cfg.l1_weight * F.l1_loss(recon, x) + cfg.kl_weight * kl.float()
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(accelerator.unwrap_model(model).vae.parameters())
        last["recon"], last["x"] = recon, x
        return StepResult(loss, len(x))

    def note() -> str:
        return f"psnr~{10 * math.log10(4 / max(F.mse_loss(last['recon'], last['x']).item(), 1e-12)):.2f}"

    def save(state: dict) -> None:
        write_checkpoint(cfg.out, accelerator.unwrap_model(model).vae, ema, optimizer, state)

    end = loop.run(optimizer, schedule, step, save, note=note, on_step=on_step,
                   extra_state={"model_size": size_dict(size), "config": config_strings(cfg)})
    final = {"step": end.step, "elapsed_s": end.elapsed_s, "loss": end.loss}
    device = accelerator.device
    return loop.finish(cfg.out, lambda: finish_vae(cfg, size, ema, pixels, final, end.rate, device))


def finish_vae(cfg: VaeTrainConfig, size: VaeSize, ema: EMAModel, pixels: torch.Tensor, state: dict,
               rate: float, device: torch.device) -> dict:
    """EMA weights -> scaling_factor, held-out PSNR, fp16 shards in OUT/vae; the report's contents."""
    final = build_vae(size).to(device)
    ema.copy_to(final.parameters())
    final.eval()
    std = latent_std(final, pixels)
    scaling = 1.0 / std
    if cfg.decoder_only and cfg.init is not None:  # same encoder: keep the factor the U-Net was trained with
        scaling = float(AutoencoderKL.load_config(str(cfg.init))["scaling_factor"])
    final.register_to_config(scaling_factor=scaling)
    heldout = heldout_records(cfg.data)
    held_pixels = load_pixels(heldout, size.image_size, cfg.workers) if heldout else pixels[:512].cpu()
    report = {
        "kind": "vae", "steps": state["step"], "minutes": state["elapsed_s"] / 60, "loss": state["loss"],
        "images_per_s": rate, "latent_std": std, "scaling_factor": scaling,
        "psnr_db": reconstruct_psnr(final, held_pixels), "psnr_on": "heldout" if heldout else "train[:512]",
        "psnr_pictures": len(held_pixels), "parameters": sum(p.numel() for p in final.parameters()),
        "model_size": size_dict(size),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
    }
    final.to(torch.float16).save_pretrained(cfg.out / "vae", max_shard_size=SHARD)
    return report
