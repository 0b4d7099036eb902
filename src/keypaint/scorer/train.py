"""Train the scorer: symmetric InfoNCE over a batch of (picture, text) pairs, with a learned temperature.

One loop for CPU (seconds-long smoke runs) and GPU (bf16 autocast, channels_last, everything in GPU
memory). The text tower is frozen, so each distinct text is encoded once up front and the loop only
trains the image tower and the text projection. Every batch is a pure function of (seed, step), so a
resumed run continues exactly where the killed one stopped.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from keypaint.core.devices import pick_device
from keypaint.errors import KeypaintError
from keypaint.scorer.data import ScorerData, load_scorer_data
from keypaint.scorer.metrics import topk_accuracy
from keypaint.scorer.model import Scorer, ScorerConfig, ScorerNet, arrays_to_pixels, save_scorer
from keypaint.scorer.style_augment import style_augment
from keypaint.scorer.text import SentenceEncoder

STATE_NAME = "train_state.pt"  # fp32 weights + optimizer + step: what --resume reads
LOG_NAME = "train_log.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """How to train; saved in the checkpoint so a resumed run keeps the same recipe."""

    steps: int = 3000  # optimizer steps in all (a resumed run stops here too)
    batch_size: int = 256  # (picture, text) pairs per step; InfoNCE sees batch_size - 1 negatives each
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 0.05  # on conv/linear weights only
    warmup_steps: int = 200  # linear warm-up, then cosine decay to lr / 10
    label_prob: float = 0.3  # share of pairs whose text is the bare label ("red apple")
    caption_variants: int = 4  # augmented keyword captions fixed per picture (then encoded once)
    augment: bool = True  # random zoom/shift of pictures (no flips: arrows and hands have a side)
    style_augment: float = 0.0  # share of pictures redrawn grey/ink/edges/inverted/hue-shifted
    seed: int = 0
    checkpoint_every: int = 500  # steps between atomic checkpoints (and held-out evaluations)
    log_every: int = 50
    minutes: float | None = None  # also stop after this much training time; the lr curve follows it


@dataclass
class TrainResult:
    step: int
    loss: float
    out_dir: Path
    images_per_s: float
    eval: dict[str, float] = field(default_factory=dict)


def lr_at(step: int, cfg: TrainConfig, elapsed_s: float = 0.0) -> float:
    """Linear warm-up to `lr`, then cosine decay to lr / 10 at `steps` (or `minutes`, whichever is first)."""
    warmup = min(cfg.warmup_steps, max(1, cfg.steps // 10))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, cfg.steps - warmup))
    if cfg.minutes is not None:
        progress = max(progress, min(1.0, elapsed_s / (60.0 * cfg.minutes)))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> torch.Tensor:
    """Pictures of `step`: consecutive slices of one random permutation per epoch (a function of the step)."""
    positions = torch.arange(step * batch_size, (step + 1) * batch_size)
    out = torch.empty(batch_size, dtype=torch.long)
    for epoch in positions.div(n, rounding_mode="floor").unique().tolist():
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        hit = positions.div(n, rounding_mode="floor") == epoch
        out[hit] = perm[positions[hit] % n]
    return out


def augment_pixels(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random zoom (0.85-1.15) and shift (up to 10%); edges repeat the (mostly white) border."""
    n = pixels.shape[0]
    scale = torch.empty(n).uniform_(0.85, 1.15, generator=generator)
    shift = torch.empty(n, 2).uniform_(-0.1, 0.1, generator=generator)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(pixels.device), list(pixels.shape), align_corners=False)
    return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)


def contrastive_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor, positives: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP) with several positives per row: targets spread evenly over them.

    logits_ij = exp(t) * <image_i, text_j>; loss = (CE(rows) + CE(columns)) / 2.
    """
    logits = logit_scale.exp().clamp(max=100.0) * image_emb @ text_emb.T
    pos = positives.float()
    loss_images = F.cross_entropy(logits, pos / pos.sum(1, keepdim=True))
    loss_texts = F.cross_entropy(logits.T, (pos / pos.sum(0, keepdim=True)).T)
    return (loss_images + loss_texts) / 2


def sample_batch(
    data: ScorerData, sentence: torch.Tensor, step: int, cfg: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pixels, MiniLM text embeddings, positives) of `step`: a pure function of (seed, step)."""
    device = data.images.device
    gen = torch.Generator().manual_seed(cfg.seed * 7_919 + step)
    idx = batch_indices(step, cfg.batch_size, len(data), cfg.seed).to(device)
    is_label = (torch.rand(cfg.batch_size, generator=gen) < cfg.label_prob).to(device)
    variants = data.text_ids.shape[1]
    variant = torch.randint(1, max(2, variants), (cfg.batch_size,), generator=gen).clamp(max=variants - 1)
    variant = torch.where(is_label, 0, variant.to(device))
    pixels = arrays_to_pixels(data.images[idx])
    if cfg.augment:
        pixels = augment_pixels(pixels, gen)
    pixels = style_augment(pixels, gen, cfg.style_augment)
    if device.type == "cuda":
        pixels = pixels.contiguous(memory_format=torch.channels_last)
    return pixels, sentence[data.text_ids[idx, variant]], positives_for(data, idx, is_label)


def positives_for(data: ScorerData, idx: torch.Tensor, is_label: torch.Tensor) -> torch.Tensor:
    """(B, B) bool: picture i fits text j if the labels agree and the text is bare or names i's style."""
    labels, styles = data.label_ids[idx], data.style_ids[idx]
    same_label = labels[:, None] == labels[None, :]
    return same_label & (is_label[None, :] | (styles[:, None] == styles[None, :]))


def train_scorer(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 2e-3,
    image_size: int = 64,
    device: str | None = None,
    resume: bool = False,
    eval_dir: str | Path | None = None,
    model: ScorerConfig | None = None,
    progress: bool = True,
    stop_at: int | None = None,
    init: str | Path | None = None,
    **train_options: object,
) -> TrainResult:
    """Train a scorer on `data_dir`, writing config.json + model.safetensors (fp16) and a resumable state.

    `train_options` are further `TrainConfig` fields (seed, checkpoint_every, label_prob, ...); `model`
    overrides the tower shapes (its image_size wins over `image_size`). `stop_at` ends this run early at
    that step (checkpointed; the schedule still runs to `steps`), to split a run or to test resuming. `init`
    starts from a trained scorer's weights (a folder, whose shapes win over `model`) instead of random ones. A
    folder that already holds a training state is only continued with `resume=True`, never overwritten.
    """
    out = Path(out_dir)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, **train_options)  # type: ignore[arg-type]
    if not 0.0 <= cfg.style_augment <= 1.0:
        raise KeypaintError(f"--style-augment must lie within [0, 1], got {cfg.style_augment}")
    model_cfg = model or ScorerConfig(image_size=image_size)
    start_from = Scorer.load(init).net if init is not None else None
    if start_from is not None:
        model_cfg = start_from.config
    torch_device = pick_device(device)
    state_path = out / STATE_NAME
    state = None
    if state_path.is_file():
        if not resume:
            raise KeypaintError(
                f"{out} already holds a scorer training state; pass --resume or another --out"
            )
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        saved = ScorerConfig.from_dict(state["scorer_config"])
        if (model is not None and saved != model) or saved.image_size != model_cfg.image_size:
            raise KeypaintError(f"{state_path}: was trained with {saved}, not {model_cfg}")
        model_cfg = saved

    # 1. pictures and texts into memory, each distinct text through the frozen MiniLM once
    data = load_scorer_data(data_dir, model_cfg.image_size, cfg.caption_variants, cfg.seed).to(torch_device)
    encoder = SentenceEncoder(torch_device, _text_dtype(torch_device), model_cfg.max_text_tokens)
    sentence = encoder.encode(data.texts)
    heldout = (
        _load_heldout(eval_dir, model_cfg, data, encoder, torch_device) if eval_dir is not None else None
    )
    del encoder

    # 2. model and optimizer (weight decay on conv/linear weights only)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG left alone
        torch.manual_seed(cfg.seed)
        net = ScorerNet(model_cfg)
    if start_from is not None and state is None:
        net.load_state_dict(start_from.state_dict())
    net = net.to(torch_device)
    if torch_device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    decay = [p for p in net.parameters() if p.ndim >= 2]
    no_decay = [p for p in net.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
        fused=torch_device.type == "cuda",
    )
    start, elapsed_before = 0, 0.0
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, elapsed_before = int(state["step"]), float(state.get("elapsed_s", 0.0))
    out.mkdir(parents=True, exist_ok=True)

    # 3. training loop
    autocast = torch.autocast(torch_device.type, dtype=torch.bfloat16, enabled=torch_device.type == "cuda")
    net.train()
    loss_value, seen, t0 = float("nan"), 0, time.perf_counter()
    metrics: dict[str, float] = {}
    end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, disable=not progress, desc="scorer")
    for step in bar:
        elapsed = elapsed_before + time.perf_counter() - t0
        pixels, text_in, positives = sample_batch(data, sentence, step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg, elapsed)
        with autocast:
            image_emb = net.encode_images(pixels)
            text_emb = net.encode_text_embeddings(text_in)
            loss = contrastive_loss(image_emb, text_emb, net.logit_scale, positives)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += cfg.batch_size
        done = step + 1
        out_of_time = cfg.minutes is not None and elapsed >= 60.0 * cfg.minutes
        last = done == end or out_of_time
        if done % cfg.log_every == 0 or last:
            loss_value = float(loss.detach())
            rate = seen / (time.perf_counter() - t0)
            temperature = 1 / net.logit_scale.exp().item()
            bar.set_postfix(loss=f"{loss_value:.3f}", temp=f"{temperature:.3f}", img_s=f"{rate:.0f}")
            row = {"step": done, "loss": loss_value, "lr": lr_at(step, cfg, elapsed), "images_per_s": rate}
            _log(out, {**row, "temperature": temperature, "elapsed_s": elapsed})
        if done % cfg.checkpoint_every == 0 or last:
            if heldout is not None:
                metrics = _evaluate(net, heldout)
                net.train()
                _log(out, {"step": done, **metrics})
            _checkpoint(net, optimizer, done, model_cfg, cfg, out, elapsed_before + time.perf_counter() - t0)
        if out_of_time:
            end = done
            break
    bar.close()
    if start >= end and heldout is not None:
        metrics = _evaluate(net, heldout)
    elapsed = time.perf_counter() - t0
    return TrainResult(
        step=max(start, end),
        loss=loss_value,
        out_dir=out,
        images_per_s=seen / elapsed if seen else 0.0,
        eval=metrics,
    )


def _text_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


@dataclass
class _Heldout:
    images: torch.Tensor  # uint8 (N, S, S, 3) on the device
    true_index: torch.Tensor  # index of each picture's label in the label list
    labels: torch.Tensor  # MiniLM sentence embeddings of all labels (train + held out)


def _load_heldout(
    folder: str | Path,
    model_cfg: ScorerConfig,
    train: ScorerData,
    encoder: SentenceEncoder,
    device: torch.device,
) -> _Heldout:
    data = load_scorer_data(folder, model_cfg.image_size, caption_variants=0)
    labels = sorted(set(train.distinct_labels) | set(data.distinct_labels))
    index = {label: i for i, label in enumerate(labels)}
    true_index = torch.tensor([index[label] for label in data.labels], dtype=torch.long)
    return _Heldout(data.images.to(device), true_index, encoder.encode(labels))


@torch.no_grad()
def _evaluate(net: ScorerNet, heldout: _Heldout) -> dict[str, float]:
    """Held-out retrieval: each picture's label among all labels, labels as the prompt."""
    net.eval()
    feats = torch.cat([net.encode_images(arrays_to_pixels(chunk)) for chunk in heldout.images.split(512)])
    similarity = feats @ net.encode_text_embeddings(heldout.labels).T
    acc = topk_accuracy(similarity, heldout.true_index, (1, 5))
    return {"heldout_top1": acc[1], "heldout_top5": acc[5]}


def _checkpoint(
    net: ScorerNet,
    optimizer: torch.optim.Optimizer,
    step: int,
    model_cfg: ScorerConfig,
    cfg: TrainConfig,
    out: Path,
    elapsed_s: float,
) -> None:
    """The resumable state, then the fp16 scorer; both written to a temp file and renamed over the old one."""
    state = {
        "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "step": step,
        "scorer_config": json.loads(model_cfg.to_json()),
        "train_config": asdict(cfg),
        "elapsed_s": elapsed_s,
    }
    tmp = out / f".{STATE_NAME}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, out / STATE_NAME)
    save_scorer(net, out)


def _log(out: Path, row: dict[str, float]) -> None:
    with (out / LOG_NAME).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
