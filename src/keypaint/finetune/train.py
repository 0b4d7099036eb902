"""`finetune`: teach a model a style or a character from a few pictures.

Stages: 1. check the options, the pictures and the paths (before any model loads); 2. load the base
model; 3. (DreamBooth) paint the missing class pictures; 4. encode the pictures once with the model's
VAE (posterior mean and std: every step draws a fresh latent sample, as SD's training does); 5. set up
what is trained (`finetune.trainable`: adapter layers, new token vectors, both, or the whole U-Net); 6. the
denoising loop with SD's objective and Min-SNR weighting (SD3/Flux: a LoRA on the transformer with the
rectified-flow objective, `finetune.flow`), resumable checkpoints and sample pictures; 7. write the output
file (a model folder for `full`) with its metadata, never over an existing one.

Each step's random draws come from a CPU generator seeded by (seed, step, process), so a run resumed after a
kill takes exactly the steps the uninterrupted run would have taken. Under `accelerate launch` each process
trains on its own draws and steps with every process's mean gradient; the main process alone paints the
class pictures and the samples and writes the checkpoints, the output file and the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from keypaint.builtin import MODEL as BUILTIN
from keypaint.core.adapters import embeddings_dir, loras_dir
from keypaint.finetune.conditioning import conditioner
from keypaint.finetune.config import FinetuneConfig, FinetuneError, Method
from keypaint.finetune.data import ImageSet, read_images
from keypaint.finetune.dreambooth import class_caption, class_pictures, make_class_pictures
from keypaint.finetune.flow import FlowObjective
from keypaint.finetune.full import check_base, folder_bytes, write_model_folder
from keypaint.finetune.output import device_name, settings_of, write_new_file
from keypaint.finetune.samples import SamplePainter
from keypaint.finetune.trainable import Trainable, setup
from keypaint.models.adapter_format import FinetuneInfo, model_fingerprint
from keypaint.models.loaded import LoadedModel
from keypaint.models.registry import BUILTIN_ALIASES, keypaint_home, models_dir, resolve_model
from keypaint.training.checkpoint import Checkpoint, latest_checkpoint, read_checkpoint, save_checkpoint
from keypaint.training.common import Schedule, average_gradients, make_accelerator
from keypaint.training.latents import encode_latents
from keypaint.training.loop import Cadence, Display, StepResult, TrainingLoop
from keypaint.training.unet import snr_weight
from keypaint.versions import package_version

if TYPE_CHECKING:
    from accelerate import Accelerator

StepHook = Callable[[int, float], None]  # (steps done, mean loss of the last step) after every step
PROCESS_STRIDE = 7_777_777  # seeds of process k's steps start here times k (no run has that many steps)


@dataclass(frozen=True)
class Plan:
    """A checked run: its pictures and where it writes."""

    config: FinetuneConfig
    images: ImageSet
    out: Path
    run_dir: Path


@dataclass
class FinetuneResult:
    path: Path  # the LoRA or embedding written (full: the model folder)
    method: str
    token: str
    steps: int
    seconds: float  # the whole run: loading, encoding, training, writing
    train_seconds: float  # the training steps alone (this run's share if it was resumed)
    bytes: int
    loss: float
    device: str
    samples: list[Path]
    note: str | None  # what was done to pictures of other sizes, if anything
    main_process: bool = True  # False in the other processes of `accelerate launch` (they print nothing)


def plan(cfg: FinetuneConfig) -> Plan:
    """Check everything that needs no model: options, pictures, output file, run folder, base model path.
    `--method auto` is resolved here: the plan's config names the method that will run."""
    cfg = cfg.resolved()
    cfg.check()
    images = read_images(cfg.images)
    home = cfg.home or keypaint_home()
    if cfg.method is Method.FULL:
        out = cfg.out or models_dir(home) / cfg.token
    else:
        folder = embeddings_dir(home) if cfg.method is Method.TEXTUAL_INVERSION else loras_dir(home)
        out = cfg.out or folder / f"{cfg.token}.safetensors"
    run_dir = cfg.run_dir or home / "finetune" / f"{cfg.token}-{cfg.method.value}"
    if out.exists():
        raise FinetuneError(
            f"{out} already exists and keypaint never overwrites a file; choose another --out"
        )
    if (run_dir / "report.json").is_file():
        raise FinetuneError(f"{run_dir} holds a finished run; choose another --run-dir")
    found = latest_checkpoint(run_dir)
    if cfg.resume and found is None:
        raise FinetuneError(f"{run_dir}: no checkpoint to resume from")
    if not cfg.resume and found is not None:
        raise FinetuneError(
            f"{run_dir} holds an unfinished run; pass --resume to continue it, or --run-dir to start another"
        )
    if cfg.uses_prior and not cfg.class_prompt and not class_pictures(cfg.class_dir or run_dir / "class"):
        raise FinetuneError(
            f"{cfg.class_dir}: no class pictures; add some, or give --class-prompt to paint them"
        )
    if cfg.base is not None and cfg.base not in BUILTIN_ALIASES:
        base = resolve_model(cfg.base, home)  # a missing model fails here, before any loading
        if cfg.method is Method.FULL:
            check_base(base)  # too large to train whole: refused from its headers
    return Plan(cfg, images, out, run_dir)


def finetune(
    cfg: FinetuneConfig,
    *,
    model: LoadedModel | None = None,
    on_step: StepHook | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> FinetuneResult:
    """Run (or resume) a fine-tune and write its file; returns what was written and how long it took.

    `model` is a base model already loaded (fp32; it is trained where it lives and given back unchanged);
    by default `cfg.base` is loaded.
    """
    started = time.perf_counter()
    checked = plan(cfg)
    asked, cfg, run_dir = cfg.method, checked.config, checked.run_dir
    handed_in = model is not None
    cpu = cfg.cpu if model is None else model.denoiser.device.type != "cuda"
    accelerator = make_accelerator(run_dir, cpu=cpu)
    device, main = accelerator.device, accelerator.is_main_process
    if not main:
        log = _silent
    if asked is Method.AUTO:
        log(f"--method auto chose {cfg.method.value} for {cfg.base or 'the built-in model'}")
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = read_checkpoint(latest_checkpoint(run_dir)) if cfg.resume else None  # type: ignore[arg-type]
    if ckpt is not None and ckpt.state.get("identity") != cfg.identity():
        changed = [k for k, v in cfg.identity().items() if ckpt.state.get("identity", {}).get(k) != v]
        raise FinetuneError(
            f"--resume: the run in {run_dir} was started with other settings ({', '.join(changed)})"
        )

    # 2. the base model, fp32 (CUDA steps run under bf16 autocast)
    from keypaint.models.loader import load_model

    if model is None:
        model = load_model(
            cfg.base, home=cfg.home, device=device, dtype=torch.float32, allow_pickle=cfg.allow_pickle,
            builtin=BUILTIN,
        )
    if model.kind.is_flow and cfg.method is not Method.LORA:  # before any picture is encoded or painted
        raise FinetuneError(f"{model.name} is a {model.kind.value} model: keypaint finetune trains LoRAs on "
                            "SD3 and Flux (--method lora); the other methods are for the U-Net models")
    fingerprint = model_fingerprint(model)
    resolution = cfg.resolution or model.native_size
    note = checked.images.note(resolution)
    if note:
        log(note)
    captions = [cfg.caption(image.caption) for image in checked.images.images]
    trained: Trainable | None = None

    try:
        # 3. prior pictures (DreamBooth's class), the missing ones painted by the untouched base model
        class_paths: list[Path] = []
        if cfg.uses_prior:
            folder = cfg.class_dir or run_dir / "class"
            class_paths = class_pictures(folder)[: cfg.class_images]
            if cfg.class_prompt and main:
                make_class_pictures(
                    model,
                    folder,
                    cfg.class_prompt,
                    cfg.class_images,
                    seed=cfg.seed,
                    on_picture=lambda i, n: log(f"class picture {i}/{n}") if i == n else None,
                )
            accelerator.wait_for_everyone()
            class_paths = class_pictures(folder)[: cfg.class_images]

        # 4. latents of the pictures, once
        from keypaint.data.folder import Record

        vae = model.pipe.vae
        mean, std = encode_latents(
            vae, checked.images.records(captions), resolution, device, batch=16, workers=2
        )
        class_mean = class_std = None
        class_captions = [class_caption(p, cfg.class_prompt or "") for p in class_paths]
        if class_paths:
            records = [Record(p, c, {}) for p, c in zip(class_paths, class_captions, strict=True)]
            class_mean, class_std = encode_latents(vae, records, resolution, device, batch=16, workers=2)
        scaling, shift = (
            float(vae.config.scaling_factor),
            float(getattr(vae.config, "shift_factor", None) or 0.0),
        )

        # 5. what is trained (finetune.trainable; SD3/Flux: a LoRA on the transformer, finetune.flow)
        unet = model.denoiser
        flow = FlowObjective(model, device) if model.kind.is_flow else None
        for encoder in (
            getattr(model.pipe, "text_encoder", None),
            getattr(model.pipe, "text_encoder_2", None),
            getattr(model.pipe, "text_encoder_3", None),
        ):
            if encoder is not None:
                encoder.requires_grad_(False).eval()
        trained = setup(cfg, model, device, keep_original=handed_in)
        if ckpt is not None:
            trained.load(ckpt.model)
        params, vectors = trained.params, trained.vectors
        unet.train()
        optimizer = torch.optim.AdamW(trained.groups, lr=cfg.learning_rate)
        if ckpt is not None:
            optimizer.load_state_dict(ckpt.optimizer)
        schedule = Schedule(cfg.steps, None, cfg.learning_rate, min(cfg.warmup_steps, cfg.steps))
        if flow is None:
            noise_scheduler = DDPMScheduler.from_config(model.pipe.scheduler.config)
            prediction = str(noise_scheduler.config.prediction_type)
            # kohya's --min/max_timestep: a style lives in the low-noise steps, the layout in the high-noise
            max_t = min(cfg.max_timestep, int(noise_scheduler.config.num_train_timesteps))
            alphas = noise_scheduler.alphas_cumprod.to(device)
            condition = conditioner(model, cfg, vectors, resolution, device)

        # 6. the loop (the shared one: cadence, resume, non-finite loss check, checkpoints)
        loop = TrainingLoop(
            "finetune",
            accelerator,
            Cadence(cfg.steps, cfg.checkpoint_every),
            Display(
                f"{cfg.method.value} {cfg.token}",
                show=progress,
                print_logs=False,
                mininterval=1.0,
                hint="lower --lr (the last checkpoint is kept)",
            ),
            resume=ckpt,
        )
        samples: list[Path] = []
        sampler = SamplePainter(model, cfg, run_dir, fingerprint, captions[0])
        batch = cfg.batch_size

        def step(index: int) -> StepResult:
            g = torch.Generator().manual_seed(
                cfg.seed * 1_000_003 + index + PROCESS_STRIDE * accelerator.process_index
            )
            idx = torch.randint(len(mean), (batch,), generator=g)
            z0 = mean[idx].float() + std[idx].float() * torch.randn(mean[idx].shape, generator=g)
            texts = [captions[i] for i in idx.tolist()]
            if class_mean is not None and class_std is not None:
                cidx = torch.randint(len(class_mean), (batch,), generator=g)
                z0 = torch.cat(
                    [
                        z0,
                        class_mean[cidx].float()
                        + class_std[cidx].float() * torch.randn(class_mean[cidx].shape, generator=g),
                    ]
                )
                texts += [class_captions[i] for i in cidx.tolist()]
            # SD's latent: z = (sample - shift) * scaling_factor, scaled to unit variance
            z = ((z0 - shift) * scaling).to(device)
            noise = torch.randn(z.shape, generator=g).to(device)
            if flow is not None:  # SD3/Flux: the rectified-flow objective (finetune.flow)
                with accelerator.autocast():
                    loss = flow.per_sample(z, noise, texts, g).mean()
                return _update(loss, params, optimizer, len(z), accelerator)
            t = torch.randint(cfg.min_timestep, max_t, (len(z),), generator=g).to(device)
            # forward chain q(z_t | z_0): z_t = sqrt(a_t) z_0 + sqrt(1 - a_t) eps (Ho et al. 2020)
            zt = noise_scheduler.add_noise(z, noise, t)
            target = noise if prediction == "epsilon" else noise_scheduler.get_velocity(z, noise, t)
            with accelerator.autocast():
                context, added = condition(texts)
                pred = unet(zt, t, context, added_cond_kwargs=added).sample
            per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
            per_sample = per_sample * snr_weight(alphas, t, cfg.min_snr_gamma, prediction)
            loss = per_sample[:batch].mean()
            if class_mean is not None:
                loss = loss + cfg.prior_weight * per_sample[batch:].mean()
            return _update(loss, params, optimizer, len(z), accelerator)

        def save(state: dict[str, Any]) -> None:
            save_checkpoint(run_dir, Checkpoint(trained.state(), {}, optimizer.state_dict(), state))

        def paint_samples(index: int) -> None:
            if main and cfg.sample_every and (index % cfg.sample_every == 0 or index == cfg.steps):
                samples.append(sampler.paint(index, vectors))
                unet.train()

        end = loop.run(
            optimizer,
            schedule,
            step,
            save,
            extra_state={"identity": cfg.identity()},
            after_step=paint_samples,
            on_step=None if on_step is None else lambda index: on_step(index, loop.loss),
        )

        # 7. the output file
        info = FinetuneInfo(
            method=cfg.method.value,
            token=cfg.token,
            base_model=model.name,
            base_sha256=fingerprint,
            base_kind=model.kind.value,
            steps=cfg.steps,
            images=checked.images.manifest(),
            settings={**settings_of(cfg, resolution), **trained.settings()},
            seconds=round(end.elapsed_s, 1),
            device=device_name(device),
            version=package_version("keypaint"),
        )
        if cfg.method is Method.FULL:
            if main:  # before the model is given back its own weights
                write_model_folder(model, checked.out, info.to_header())
        else:
            tensors, header = trained.file(info)
    finally:
        _give_back(model, trained)
    if main and cfg.method is not Method.FULL:
        write_new_file(checked.out, tensors, header)
    accelerator.wait_for_everyone()
    result = FinetuneResult(
        path=checked.out,
        method=cfg.method.value,
        token=cfg.token,
        steps=end.step,
        seconds=time.perf_counter() - started,
        train_seconds=end.seconds,
        bytes=folder_bytes(checked.out) if checked.out.is_dir() else checked.out.stat().st_size,
        loss=end.loss,
        device=info.device,
        samples=samples,
        note=note,
        main_process=main,
    )
    report = {
        **{k: str(v) if isinstance(v, Path) else v for k, v in result.__dict__.items()},
        "samples": [str(p) for p in samples],
    }
    loop.finish(run_dir, lambda: report, announce=False)
    return result


def _silent(_: str) -> None:
    """The log of processes other than the main one."""


def _update(loss: torch.Tensor, params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
            pictures: int, accelerator: Accelerator) -> StepResult:
    """One optimiser step on the mean gradient of all processes (`accelerate launch`)."""
    loss.backward()
    average_gradients(accelerator, params)
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(loss, pictures)


def _give_back(model: LoadedModel, trained: Trainable | None) -> None:
    """The model as it was: no training adapter, its own weights, eval mode (whatever happened to the run)."""
    if trained is not None:
        trained.give_back()
    model.denoiser.eval()
