"""`keypaint train lcm`: latent consistency distillation of a trained U-Net into a LoRA (few-step sampling).

Luo et al. 2023, "Latent Consistency Models" (LCM) and "LCM-LoRA"; the recipe is diffusers'
examples/consistency_distillation/train_lcm_distill_lora_sd_wds.py on keypaint's cached latents:

- teacher = the frozen U-Net with classifier-free guidance at a scale w ~ U[w_min, w_max];
- one DDIM step (eta 0) of the teacher from t_{n+k} to t_n on the skipping schedule [k-1, 2k-1, ..., T-1],
  k = T // num_ddim_timesteps, the 50 "original" steps diffusers' LCMScheduler samples from;
- student = the same U-Net plus peft LoRA layers; target = the student itself at t_n under no_grad (no
  separate target network for LCM-LoRA);
- consistency function f(z, t) = c_skip(t) z + c_out(t) x0(z, t) with LCMScheduler's boundary scalings,
  and a pseudo-Huber loss between f(z_{t_{n+k}}, t_{n+k}) and f(z_{t_n}, t_n).

The LoRA is saved as diffusers saves LoRAs (`StableDiffusionPipeline.load_lora_weights` reads it); sample with
`LCMScheduler.from_config(pipe.scheduler.config)`, 4 steps, guidance_scale 1 (CFG is distilled in).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, LCMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from keypaint.builtin.architecture import TRAIN_SCHEDULE
from keypaint.builtin.text_encoder import load_text_encoder
from keypaint.models.loaded import ModelKind
from keypaint.prompts.encode import encode_plain
from keypaint.training.checkpoint import Checkpoint, save_checkpoint
from keypaint.training.common import (
    Schedule,
    TrainingError,
    config_strings,
    make_accelerator,
    prepare_run_dir,
    random_streams,
)
from keypaint.training.data import load_split
from keypaint.training.latents import cached_latents, draw_batch
from keypaint.training.loop import Cadence, Display, StepResult, TrainingLoop

ADAPTER = "keypaint-lcm"
LORA_FILE = "lcm_lora.safetensors"
# What the diffusers script trains: every attention/feed-forward linear, and the ResNet and resampling convs.
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
           "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj"]
INFERENCE = {"scheduler": "LCMScheduler", "num_inference_steps": 4, "guidance_scale": 1.0}


@dataclass
class LcmTrainConfig:
    data: Path  # captioned picture folder (the one the teacher was trained on)
    vae: Path  # the teacher's VAE folder (diffusers format)
    init: Path  # the teacher U-Net folder (diffusers format, e.g. builtin/weights/unet)
    out: Path  # run folder: checkpoint/, logs/, latents.safetensors, lcm_lora.safetensors, report.json
    batch_size: int = 256  # latents per step and process
    max_steps: int = 4000
    max_minutes: float | None = None  # wall-clock budget; the learning-rate curve follows it too
    lr: float = 1e-4  # peak learning rate of the LoRA weights (the diffusers script's default)
    warmup_steps: int = 100
    rank: int = 32  # LoRA rank; alpha = rank, so the update applies at scale 1
    num_ddim_timesteps: int = 50  # solver steps over the 1000-step schedule (LCMScheduler's original steps)
    w_min: float = 5.0  # teacher guidance scale range, diffusers' convention (LCM paper's w + 1)
    w_max: float = 9.0
    huber_c: float = 0.001  # pseudo-Huber: sqrt(d^2 + c^2) - c
    timestep_scaling: float = 10.0  # boundary-condition scaling, the same value LCMScheduler samples with
    style_drop: float = 0.15  # share of captions without their style keyword
    all_tags: float = 0.3  # share of captions with every tag (as keyword expansion writes them)
    checkpoint_every: int = 1000
    log_every: int = 100
    seed: int = 0
    resume: bool = False
    cpu: bool = False
    workers: int = 8

    def check(self) -> None:
        """Short errors for options that cannot work, before anything is loaded."""
        for name, value in (("steps", self.max_steps), ("rank", self.rank), ("batch-size", self.batch_size),
                            ("ddim-timesteps", self.num_ddim_timesteps)):
            if value < 1:
                raise TrainingError(f"--{name} must be at least 1, got {value}")
        if self.num_ddim_timesteps > TRAIN_SCHEDULE["num_train_timesteps"]:
            raise TrainingError(f"--ddim-timesteps must be at most 1000, got {self.num_ddim_timesteps}")
        if not 1.0 <= self.w_min <= self.w_max:
            raise TrainingError(f"guidance range must be 1 <= w-min <= w-max, got {self.w_min}..{self.w_max}")
        if self.lr <= 0 or (self.max_minutes is not None and self.max_minutes <= 0):
            raise TrainingError("--lr and --minutes must be positive")
        if not self.data.is_dir():
            raise TrainingError(f"{self.data}: no such data folder")
        for folder, what in ((self.vae, "VAE"), (self.init, "teacher U-Net")):
            if not (folder / "config.json").is_file():
                raise TrainingError(f"{folder}: no {what} here (config.json missing)")


class DdimSolver:
    """DDIM (eta = 0) over LCM's skipping schedule: timesteps [k-1, 2k-1, ..., T-1], k = T // n."""

    def __init__(self, alphas_cumprod: torch.Tensor, n: int) -> None:
        k = len(alphas_cumprod) // n
        self.k = k
        self.timesteps = torch.arange(1, n + 1) * k - 1
        # alpha-bar of the step below each solver timestep; the lowest step lands on t = 0.
        self.alphas_prev = alphas_cumprod[torch.cat([torch.zeros(1, dtype=torch.long), self.timesteps[:-1]])]

    def to(self, device: torch.device) -> DdimSolver:
        self.timesteps, self.alphas_prev = self.timesteps.to(device), self.alphas_prev.to(device)
        return self

    def step(self, x0: torch.Tensor, eps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        # z_{t_n} = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps (Song et al. 2021, DDIM with eta = 0)
        a_prev = self.alphas_prev[index].view(-1, 1, 1, 1)
        return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps


def predicted_x0(eps: torch.Tensor, t: torch.Tensor, zt: torch.Tensor, alphas_cumprod: torch.Tensor
                 ) -> torch.Tensor:
    # x0 = (z_t - sqrt(1 - a_t) eps) / sqrt(a_t), epsilon prediction (Ho et al. 2020)
    a = alphas_cumprod[t].view(-1, 1, 1, 1)
    return (zt - (1 - a).sqrt() * eps) / a.sqrt()


def consistency(lcm: LCMScheduler, zt: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """f(z_t, t) = c_skip(t) z_t + c_out(t) x0: the identity at t = 0, the model's x0 at large t."""
    c_skip, c_out = lcm.get_scalings_for_boundary_condition_discrete(t.float())
    return c_skip.view(-1, 1, 1, 1) * zt + c_out.view(-1, 1, 1, 1) * x0


def add_lcm_lora(unet: UNet2DConditionModel, rank: int) -> list[torch.nn.Parameter]:
    """Freeze the U-Net and add LoRA layers (B = 0: training starts at the teacher); returns them."""
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=TARGETS), adapter_name=ADAPTER)
    return [p for p in unet.parameters() if p.requires_grad]


def lora_tensors(unet: UNet2DConditionModel) -> dict[str, torch.Tensor]:
    """The LoRA weights in peft's layout, fp32 on the CPU (what checkpoints hold)."""
    return {k: v.detach().float().cpu().contiguous()
            for k, v in get_peft_model_state_dict(unet, adapter_name=ADAPTER).items()}


def save_lora(unet: UNet2DConditionModel, path: Path, metadata: dict[str, str]) -> None:
    """fp16 LoRA via diffusers' `save_lora_weights` (`unet.<module>.lora_A.weight`, as the diffusers LCM
    scripts write it), plus keypaint's metadata, written atomically.

    The peft keys are kept: `convert_state_dict_to_diffusers` renames only attention layers
    (`to_q.lora.down`), and `load_lora_weights` then silently skips them next to the convolutions'
    `lora_A` keys.
    """
    layers = {k: v.half() for k, v in lora_tensors(unet).items()}
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        StableDiffusionPipeline.save_lora_weights(
            tmp, unet_lora_layers=layers, weight_name=path.name,
            unet_lora_adapter_metadata=unet.peft_config[ADAPTER].to_dict())
        with safe_open(str(Path(tmp) / path.name), "pt") as f:
            meta = dict(f.metadata() or {})
        staged = Path(tmp) / f"{path.name}.tmp"
        save_file(load_file(str(Path(tmp) / path.name)), str(staged), metadata={**meta, **metadata})
        staged.replace(path)


def base_sha256(init: Path) -> str | None:
    """keypaint's U-Net hash of the teacher when it sits in a `unet` folder (as the built-in one does)."""
    from keypaint.builtin import unet_sha256

    if init.name != "unet" or not any(init.glob("*.safetensors")):
        return None
    return unet_sha256(init.parent)


def train_lcm(cfg: LcmTrainConfig, on_step: Callable[[int], None] | None = None) -> dict:
    """Distil (or resume distilling) an LCM-LoRA; returns the report also written to OUT/report.json."""
    cfg.check()
    accelerator = make_accelerator(cfg.out, cpu=cfg.cpu)
    device = accelerator.device
    cfg.out.mkdir(parents=True, exist_ok=True)
    ckpt = prepare_run_dir(cfg.out, cfg.resume)

    # 1. Data: cached VAE latents of the pictures, the empty caption's states for the teacher's CFG.
    vae = AutoencoderKL.from_pretrained(str(cfg.vae), torch_dtype=torch.float32).eval()
    teacher = UNet2DConditionModel.from_pretrained(str(cfg.init), torch_dtype=torch.float32)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    scaling = float(vae.config.scaling_factor)
    records = load_split(cfg.data, None)
    image_size = teacher.config.sample_size * factor
    mean, std = cached_latents(cfg.out, cfg.vae, accelerator, records, vae, image_size, cfg.workers)
    del vae
    if mean.shape[1:] != (teacher.config.in_channels, teacher.config.sample_size, teacher.config.sample_size):
        raise TrainingError(f"latents {tuple(mean.shape[1:])} do not fit the teacher U-Net's input")
    tokenizer, text_encoder = load_text_encoder(device, torch.float32)
    with torch.no_grad():
        uncond = encode_plain(tokenizer, text_encoder, [""], ModelKind.KEYPAINT)

    # 2. Teacher (frozen) and student (teacher + LoRA); the target is the student under no_grad.
    teacher.requires_grad_(False).eval().to(device)
    student = UNet2DConditionModel.from_pretrained(str(cfg.init), torch_dtype=torch.float32)
    torch.manual_seed(cfg.seed)
    params = add_lcm_lora(student, cfg.rank)
    if ckpt:
        set_peft_model_state_dict(student, ckpt.model, adapter_name=ADAPTER)
    student.train()
    if device.type == "cuda":
        teacher.to(memory_format=torch.channels_last)
        student.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    if ckpt:
        optimizer.load_state_dict(ckpt.optimizer)
    model, optimizer = accelerator.prepare(student, optimizer)

    # 3. Schedules: LCMScheduler holds the training betas, add_noise and the boundary scalings.
    lcm = LCMScheduler(**TRAIN_SCHEDULE, original_inference_steps=cfg.num_ddim_timesteps,
                       timestep_scaling=cfg.timestep_scaling)
    alphas = lcm.alphas_cumprod.to(device)
    solver = DdimSolver(lcm.alphas_cumprod, cfg.num_ddim_timesteps).to(device)
    schedule = Schedule(cfg.max_steps, cfg.max_minutes, cfg.lr, cfg.warmup_steps)
    loop = TrainingLoop("lcm", accelerator, Cadence(cfg.max_steps, cfg.checkpoint_every, cfg.log_every,
                                                    cfg.max_minutes),
                        Display("lcm", unit="latents", rate_key="latents_per_s"), resume=ckpt,
                        tracker_config=config_strings(cfg))
    gen, rng = random_streams(cfg.seed, loop.step, accelerator.process_index)

    def step(_: int) -> StepResult:
        # 4. A batch: fresh posterior samples z0 = (mu + sigma e) * scaling, and varied keyword captions.
        z0, captions = draw_batch(mean, std, records, scaling, cfg.batch_size, gen, rng,
                                  caption_drop=0.0, style_drop=cfg.style_drop, all_tags=cfg.all_tags)
        with torch.no_grad(), accelerator.autocast():
            context = encode_plain(tokenizer, text_encoder, captions, ModelKind.KEYPAINT).float()
        n = len(z0)
        # 5. t_{n+k} uniform over the solver's timesteps, t_n = t_{n+k} - k (clamped at 0).
        index = torch.randint(0, cfg.num_ddim_timesteps, (n,), device=device)
        t_start = solver.timesteps[index]
        t_end = (t_start - solver.k).clamp(min=0)
        # Forward chain: z_t = sqrt(a_t) z0 + sqrt(1 - a_t) eps.
        z_start = lcm.add_noise(z0, torch.randn_like(z0), t_start)
        w = torch.empty(n, 1, 1, 1, device=device).uniform_(cfg.w_min, cfg.w_max)
        if device.type == "cuda":
            z_start = z_start.contiguous(memory_format=torch.channels_last)
        # 6. Student: f(z_{t_{n+k}}, t_{n+k}).
        with accelerator.autocast():
            eps = model(z_start, t_start, context).sample.float()
        prediction = consistency(lcm, z_start, predicted_x0(eps, t_start, z_start, alphas), t_start)
        with torch.no_grad(), accelerator.autocast():
            # 7. Teacher with CFG: eps = eps_u + w (eps_c - eps_u), then one DDIM step to t_n.
            both = teacher(torch.cat([z_start, z_start]), torch.cat([t_start, t_start]),
                           torch.cat([context, uncond.expand(n, -1, -1)])).sample.float()
            eps_c, eps_u = both.chunk(2)
            eps_w = eps_u + w * (eps_c - eps_u)
            z_end = solver.step(predicted_x0(eps_w, t_start, z_start, alphas), eps_w, index)
            # 8. Target: the student itself at t_n (no separate target network for LCM-LoRA).
            eps_end = model(z_end, t_end, context).sample.float()
            target = consistency(lcm, z_end, predicted_x0(eps_end, t_end, z_end, alphas), t_end)
        # 9. Pseudo-Huber loss: mean(sqrt((f - f_target)^2 + c^2) - c).
        loss = (torch.sqrt((prediction - target) ** 2 + cfg.huber_c ** 2) - cfg.huber_c).mean()
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return StepResult(loss, n)

    def save(state: dict) -> None:
        unwrapped = accelerator.unwrap_model(model)
        save_checkpoint(cfg.out, Checkpoint(lora_tensors(unwrapped), {}, optimizer.state_dict(), state))

    end = loop.run(optimizer, schedule, step, save, on_step=on_step,
                   extra_state={"scaling_factor": scaling, "config": config_strings(cfg)})

    def report() -> dict:
        unwrapped = accelerator.unwrap_model(model)
        sha = base_sha256(cfg.init)
        lora_params = sum(v.numel() for v in lora_tensors(unwrapped).values())
        save_lora(unwrapped, cfg.out / LORA_FILE, {
            "keypaint": "lcm-lora", "base_unet_sha256": sha or "", "rank": str(cfg.rank),
            "lora_alpha": str(cfg.rank), "steps": str(end.step),
            "num_ddim_timesteps": str(cfg.num_ddim_timesteps),
            "guidance_range": f"{cfg.w_min}-{cfg.w_max}", "inference": json.dumps(INFERENCE)})
        return {"kind": "lcm", "steps": end.step, "minutes": end.elapsed_s / 60, "loss": end.loss,
                "latents_per_s": end.rate, "pictures": len(records), "batch_per_process": cfg.batch_size,
                "processes": accelerator.num_processes, "rank": cfg.rank, "lora_parameters": lora_params,
                "base_unet_sha256": sha, "guidance_range": [cfg.w_min, cfg.w_max],
                "num_ddim_timesteps": cfg.num_ddim_timesteps, "inference": INFERENCE,
                "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}

    return loop.finish(cfg.out, report)
