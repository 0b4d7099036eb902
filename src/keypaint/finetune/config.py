"""`FinetuneConfig`: one fine-tuning run, checked before any model is loaded."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from keypaint.errors import KeypaintError
from keypaint.models.registry import BUILTIN_ALIASES
from keypaint.prompts.embeddings import TOKEN_PATTERN


class FinetuneError(KeypaintError):
    """A fine-tuning run that cannot start or continue; the message says which option or file."""


class Method(StrEnum):
    """What is trained: adapter layers in the U-Net (LoRA and kin), a new word, both, or the whole U-Net."""

    AUTO = "auto"  # chosen by the base model: AUTO_BUILTIN for the built-in one, lora for checkpoints
    LORA = "lora"  # LoRA on the U-Net's attention and projection layers (Hu et al. 2021)
    DORA = "dora"  # LoRA with weight decomposition: a trained magnitude per output (Liu et al. 2024)
    LOHA = "loha"  # LyCORIS LoHa: Hadamard product of two low-rank pairs (Hyeon-Woo et al. 2022)
    LOKR = "lokr"  # LyCORIS LoKr: Kronecker product of two small factors (Yeh et al. 2024)
    B_LORA = "b-lora"  # LoRA on one attention block only: style or content (Frenkel et al. 2024)
    PIVOTAL = "pivotal"  # a new word's vectors and a LoRA, trained together (Roich et al. 2022)
    DREAMBOOTH = "dreambooth"  # LoRA with prior preservation on class pictures (Ruiz et al. 2023)
    TEXTUAL_INVERSION = "textual-inversion"  # new token vectors only (Gal et al. 2022)
    FULL = "full"  # every U-Net weight; writes a whole diffusers model folder (small bases only)

    @property
    def makes_lora(self) -> bool:
        """Writes a LoRA-family file (kohya / LyCORIS layout) into <home>/loras."""
        return self not in (Method.TEXTUAL_INVERSION, Method.FULL, Method.AUTO)

    @property
    def trains_vectors(self) -> bool:
        """Learns the new word's input vectors (`--vectors`, `--init-word`)."""
        return self in (Method.TEXTUAL_INVERSION, Method.PIVOTAL)

    @property
    def default_lr(self) -> float:
        if self is Method.TEXTUAL_INVERSION:
            return 5e-3
        return 2e-5 if self is Method.FULL else 1e-4


AUTO_BUILTIN = Method.LORA  # what `--method auto` trains on the built-in model (docs/finetune.md's benchmark)
AUTO_BUILTIN_LR = 3e-4  # ... at this rate unless --lr is given: on the built-in model's two benchmark styles,
# adoption 87% / 69% with content ratio 0.60 / 1.21, against 62% / 49% and 0.67 / 1.29 at 1e-4
DEFAULT_RANK = 8
DEFAULT_VECTORS = 4
DEFAULT_INIT_WORD = "style"
DEFAULT_EMBEDDING_LR = 5e-3  # pivotal: the new word's vectors learn at textual inversion's rate
LORA_TARGETS = ("all", "attention", "cross-attention")
B_LORA_TARGETS = ("style", "content", "both")


@dataclass
class FinetuneConfig:
    """Everything `keypaint finetune` takes; defaults suit 5-20 pictures."""

    images: Path  # folder of 2+ pictures, each with an optional same-name .txt caption
    token: str  # the new word: added to every caption while training, typed in prompts afterwards
    method: Method = Method.AUTO
    base: str | None = None  # model to fine-tune, as --model takes it; None: the built-in model
    out: Path | None = None  # file to write; None: <home>/loras/TOKEN.safetensors (embeddings/ for TI)
    run_dir: Path | None = None  # checkpoints, samples, logs; None: <home>/finetune/TOKEN-METHOD
    steps: int = 500
    lr: float | None = None  # None: 1e-4 for the LoRA family, 5e-3 textual inversion, 2e-5 full
    warmup_steps: int = 20
    rank: int | None = None  # LoRA-family rank, None: 8 (alpha = rank: the update is applied at scale 1)
    targets: str | None = None  # LoRA layers: all (kohya's, the default), attention, or cross-attention
    # (attn2) only; b-lora: style (the default), content or both
    resolution: int | None = None  # training picture side; None: the model's native size
    batch_size: int = 4
    vectors: int | None = None  # textual inversion, pivotal: tokens the new word stands for (None: 4)
    init_word: str | None = None  # ... the vectors start as this word's embedding (None: "style")
    embedding_lr: float | None = None  # pivotal: the vectors' learning rate (None: 5e-3; --lr is the LoRA's)
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
        """Prior preservation: DreamBooth always; the other methods that train the U-Net when given class
        pictures or a class prompt."""
        given = self.class_dir is not None or bool(self.class_prompt)
        return self.method is Method.DREAMBOOTH or (self.method is not Method.TEXTUAL_INVERSION and given)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else self.method.default_lr

    @property
    def lora_rank(self) -> int:
        return DEFAULT_RANK if self.rank is None else self.rank

    @property
    def lora_targets(self) -> str:
        if self.targets is not None:
            return self.targets
        return "style" if self.method is Method.B_LORA else "all"

    @property
    def vector_count(self) -> int:
        return DEFAULT_VECTORS if self.vectors is None else self.vectors

    @property
    def start_word(self) -> str:
        return DEFAULT_INIT_WORD if self.init_word is None else self.init_word

    @property
    def embedding_learning_rate(self) -> float:
        return DEFAULT_EMBEDDING_LR if self.embedding_lr is None else self.embedding_lr

    def resolved(self) -> FinetuneConfig:
        """`--method auto` made concrete from the base alone (no model loaded): AUTO_BUILTIN for the
        built-in model, lora for every checkpoint (SD 1.x, 2.x, SDXL; SD3 and Flux train LoRAs only)."""
        if self.method is not Method.AUTO:
            return self
        builtin = self.base is None or self.base in BUILTIN_ALIASES
        if not builtin:
            return replace(self, method=Method.LORA)
        return replace(self, method=AUTO_BUILTIN, lr=AUTO_BUILTIN_LR if self.lr is None else self.lr)

    def caption(self, text: str) -> str:
        """The training caption of one picture: its own keywords, then the new word (and class)."""
        word = f"{self.token} {self.class_prompt}" if self.method is Method.DREAMBOOTH else self.token
        return f"{text}, {word}" if text else word

    def check(self) -> None:
        """FinetuneError naming the first option that cannot work; cheap, no model, no pictures read."""
        if not isinstance(self.method, Method):
            raise FinetuneError(f"--method must be one of {', '.join(m.value for m in Method)}")
        if self.method is Method.AUTO:
            self.resolved().check()
            return
        method = self.method
        if not TOKEN_PATTERN.fullmatch(self.token):
            raise FinetuneError(
                f"--token {self.token!r}: use 2-40 letters, digits, '_' or '-', starting with a "
                "letter (a rare word works best, e.g. 'xyzstyle')"
            )
        _whole("--steps", self.steps, 1, 1_000_000)
        _whole("--batch-size", self.batch_size, 1, 256)
        _whole("--warmup", self.warmup_steps, 0, 1_000_000)
        _whole("--checkpoint-every", self.checkpoint_every, 1, 1_000_000)
        _whole("--sample-every", self.sample_every, 0, 1_000_000)
        _whole("--class-images", self.class_images, 1, 10_000)
        _whole("--min-timestep", self.min_timestep, 0, 999)
        _whole("--max-timestep", self.max_timestep, 1, 1000)
        self._check_method_options(method)
        if self.min_timestep >= self.max_timestep:
            raise FinetuneError(
                f"--min-timestep {self.min_timestep} must be below --max-timestep {self.max_timestep}"
            )
        if self.resolution is not None:
            _whole("--resolution", self.resolution, 64, 2048)
            if self.resolution % 8:
                raise FinetuneError(f"--resolution must be a multiple of 8, got {self.resolution}")
        for option, lr in (("--lr", self.learning_rate), ("--embedding-lr", self.embedding_learning_rate)):
            if not isinstance(lr, int | float) or not math.isfinite(lr) or not 0 < lr <= 1:
                raise FinetuneError(f"{option} must be within (0, 1], got {lr}")
        if not math.isfinite(self.prior_weight) or self.prior_weight < 0:
            raise FinetuneError(f"--prior-weight must be >= 0, got {self.prior_weight}")
        if self.min_snr_gamma is not None and not self.min_snr_gamma > 0:
            raise FinetuneError(f"--min-snr must be > 0 (or 0 for plain MSE), got {self.min_snr_gamma}")
        if method is Method.DREAMBOOTH and not (self.class_prompt or "").strip():
            raise FinetuneError(
                "--method dreambooth needs --class-prompt, the kind of thing the pictures show "
                "(e.g. 'dog', 'emoji'), for prior preservation"
            )
        if method is Method.TEXTUAL_INVERSION and (self.class_prompt or self.class_dir):
            raise FinetuneError("--class-prompt and --class-dir are for the methods that train the U-Net, "
                                "not textual-inversion")
        if self.out is not None and method is Method.FULL and self.out.suffix.lower() == ".safetensors":
            raise FinetuneError(f"--out {self.out}: --method full writes a model folder; name a folder")
        if self.out is not None and method is not Method.FULL and self.out.suffix.lower() != ".safetensors":
            raise FinetuneError(f"--out {self.out}: the file must end in .safetensors")

    def _check_method_options(self, method: Method) -> None:
        """Options only some methods take: refused, naming them, on the others."""
        if self.rank is not None:
            if not method.makes_lora:
                raise FinetuneError(f"--rank is for the LoRA methods; --method {method} has no rank")
            _whole("--rank", self.rank, 1, 256)
        if (self.vectors is not None or self.init_word is not None) and not method.trains_vectors:
            raise FinetuneError(f"--vectors and --init-word are for textual-inversion and pivotal, "
                                f"not {method}")
        if self.vectors is not None:
            _whole("--vectors", self.vectors, 1, 64)
        if self.init_word is not None and not self.init_word.strip():
            raise FinetuneError("--init-word must be a word the model knows, e.g. 'style'")
        if self.embedding_lr is not None and method is not Method.PIVOTAL:
            raise FinetuneError(f"--embedding-lr is for pivotal (textual-inversion's rate is --lr), "
                                f"not {method}")
        if self.targets is None:
            return
        if not method.makes_lora:
            raise FinetuneError(f"--targets is for the LoRA methods; --method {method} has no LoRA layers")
        allowed = B_LORA_TARGETS if method is Method.B_LORA else LORA_TARGETS
        if self.targets not in allowed:
            raise FinetuneError(
                f"--targets must be {', '.join(allowed[:-1])} or {allowed[-1]}"
                f"{' for b-lora' if method is Method.B_LORA else ''}, got {self.targets!r}"
            )

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the one it continues (defaults filled in)."""
        cfg = self.resolved()
        data = {k: str(v) for k, v in asdict(cfg).items()}
        data.update(
            rank=str(cfg.lora_rank), targets=cfg.lora_targets, vectors=str(cfg.vector_count),
            init_word=cfg.start_word,
        )
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
        return {k: data[k] for k in keep}


def _whole(option: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FinetuneError(f"{option} must be a whole number within [{low}, {high}], got {value!r}")
