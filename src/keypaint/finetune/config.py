"""`FinetuneConfig`: one fine-tuning run, checked before any model is loaded."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from keypaint.errors import KeypaintError
from keypaint.prompts.embeddings import TOKEN_PATTERN


class FinetuneError(KeypaintError):
    """A fine-tuning run that cannot start or continue; the message says which option or file."""


class Method(StrEnum):
    """What is trained: LoRA layers in the U-Net, the same with DreamBooth's prior, or only a new word."""

    LORA = "lora"  # LoRA on the U-Net's attention and projection layers (Hu et al. 2021)
    DREAMBOOTH = "dreambooth"  # LoRA with prior preservation on class pictures (Ruiz et al. 2023)
    TEXTUAL_INVERSION = "textual-inversion"  # new token vectors only (Gal et al. 2022)

    @property
    def makes_lora(self) -> bool:
        return self is not Method.TEXTUAL_INVERSION

    @property
    def default_lr(self) -> float:
        return 5e-3 if self is Method.TEXTUAL_INVERSION else 1e-4


@dataclass
class FinetuneConfig:
    """Everything `keypaint finetune` takes; defaults suit 5-20 pictures."""

    images: Path  # folder of 2+ pictures, each with an optional same-name .txt caption
    token: str  # the new word: added to every caption while training, typed in prompts afterwards
    method: Method = Method.LORA
    base: str | None = None  # model to fine-tune, as --model takes it; None: the built-in model
    out: Path | None = None  # file to write; None: <home>/loras/TOKEN.safetensors (embeddings/ for TI)
    run_dir: Path | None = None  # checkpoints, samples, logs; None: <home>/finetune/TOKEN-METHOD
    steps: int = 500
    lr: float | None = None  # None: 1e-4 for LoRA/DreamBooth, 5e-3 for textual inversion
    warmup_steps: int = 20
    rank: int = 8  # LoRA rank (alpha = rank, so the learned update is applied at scale 1)
    targets: str = "all"  # LoRA layers: all (kohya's), attention, or cross-attention (attn2) only
    resolution: int | None = None  # training picture side; None: the model's native size
    batch_size: int = 4
    vectors: int = 4  # textual inversion: tokens the new word stands for
    init_word: str = "style"  # textual inversion: the vectors start as this word's embedding
    class_prompt: str | None = None  # DreamBooth: the class the subject belongs to, e.g. "dog" or "emoji"
    class_dir: Path | None = None  # prior pictures (DreamBooth's class, or a LoRA's regularisation set);
    # missing ones are painted by the base model from class_prompt; a same-name .txt is a picture's caption
    class_images: int = 50
    prior_weight: float = 1.0  # DreamBooth: weight of the class pictures' loss
    min_snr_gamma: float | None = 5.0  # Min-SNR loss weighting (Hang et al. 2023); None: plain MSE
    min_timestep: int = 0  # train on noise levels t in [min_timestep, max_timestep) only (kohya's options):
    max_timestep: int = 1000  # a lower max_timestep teaches the rendering and leaves the composition
    sample_every: int = 0  # paint a sample picture every K steps into RUN/samples (0: never)
    sample_prompt: str | None = None  # None: the first picture's caption
    checkpoint_every: int = 50  # steps between resumable checkpoints
    seed: int = 0
    resume: bool = False  # continue the run in run_dir after a kill
    cpu: bool = False  # train on the CPU even when a GPU is there
    home: Path | None = None
    allow_pickle: bool = False  # for a pickled base checkpoint (read weights-only)

    @property
    def uses_prior(self) -> bool:
        """Prior preservation: DreamBooth always, a LoRA when given class pictures or a class prompt."""
        return self.method is Method.DREAMBOOTH or (
            self.method is Method.LORA and (self.class_dir is not None or bool(self.class_prompt))
        )

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else self.method.default_lr

    def caption(self, text: str) -> str:
        """The training caption of one picture: its own keywords, then the new word (and class)."""
        word = f"{self.token} {self.class_prompt}" if self.method is Method.DREAMBOOTH else self.token
        return f"{text}, {word}" if text else word

    def check(self) -> None:
        """FinetuneError naming the first option that cannot work; cheap, no model, no pictures read."""
        if not isinstance(self.method, Method):
            raise FinetuneError(f"--method must be one of {', '.join(m.value for m in Method)}")
        if not TOKEN_PATTERN.fullmatch(self.token):
            raise FinetuneError(
                f"--token {self.token!r}: use 2-40 letters, digits, '_' or '-', starting with a "
                "letter (a rare word works best, e.g. 'xyzstyle')"
            )
        _whole("--steps", self.steps, 1, 1_000_000)
        _whole("--rank", self.rank, 1, 256)
        _whole("--batch-size", self.batch_size, 1, 256)
        _whole("--vectors", self.vectors, 1, 64)
        _whole("--warmup", self.warmup_steps, 0, 1_000_000)
        _whole("--checkpoint-every", self.checkpoint_every, 1, 1_000_000)
        _whole("--sample-every", self.sample_every, 0, 1_000_000)
        _whole("--class-images", self.class_images, 1, 10_000)
        _whole("--min-timestep", self.min_timestep, 0, 999)
        _whole("--max-timestep", self.max_timestep, 1, 1000)
        if self.min_timestep >= self.max_timestep:
            raise FinetuneError(
                f"--min-timestep {self.min_timestep} must be below --max-timestep {self.max_timestep}"
            )
        if self.resolution is not None:
            _whole("--resolution", self.resolution, 64, 2048)
            if self.resolution % 8:
                raise FinetuneError(f"--resolution must be a multiple of 8, got {self.resolution}")
        lr = self.learning_rate
        if not isinstance(lr, int | float) or not math.isfinite(lr) or not 0 < lr <= 1:
            raise FinetuneError(f"--lr must be within (0, 1], got {lr}")
        if not math.isfinite(self.prior_weight) or self.prior_weight < 0:
            raise FinetuneError(f"--prior-weight must be >= 0, got {self.prior_weight}")
        if self.min_snr_gamma is not None and not self.min_snr_gamma > 0:
            raise FinetuneError(f"--min-snr must be > 0 (or 0 for plain MSE), got {self.min_snr_gamma}")
        if self.method is Method.DREAMBOOTH and not (self.class_prompt or "").strip():
            raise FinetuneError(
                "--method dreambooth needs --class-prompt, the kind of thing the pictures show "
                "(e.g. 'dog', 'emoji'), for prior preservation"
            )
        if self.method is Method.TEXTUAL_INVERSION and (self.class_prompt or self.class_dir):
            raise FinetuneError("--class-prompt and --class-dir are for lora and dreambooth")
        if self.targets not in ("all", "attention", "cross-attention"):
            raise FinetuneError(f"--targets must be all, attention or cross-attention, got {self.targets!r}")
        if self.method is Method.TEXTUAL_INVERSION and not self.init_word.strip():
            raise FinetuneError("--init-word must be a word the model knows, e.g. 'style'")
        if self.out is not None and self.out.suffix.lower() != ".safetensors":
            raise FinetuneError(f"--out {self.out}: the file must end in .safetensors")

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the one it continues."""
        keep = (
            "method",
            "token",
            "base",
            "rank",
            "targets",
            "resolution",
            "batch_size",
            "vectors",
            "init_word",
            "class_prompt",
            "prior_weight",
            "min_snr_gamma",
            "min_timestep",
            "max_timestep",
            "seed",
            "steps",
        )
        data = asdict(self)
        return {k: str(data[k]) for k in keep}


def _whole(option: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FinetuneError(f"{option} must be a whole number within [{low}, {high}], got {value!r}")
