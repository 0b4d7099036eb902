"""The scorer: a small CLIP-style image-text model that says how well a picture matches keywords.

Image tower: a ResNet trained from scratch on 64-128 px RGB. Text tower: frozen all-MiniLM-L6-v2 sentence
embeddings (`keypaint.scorer.text`) + a trained MLP projection. Both land in one L2-normalised space, so a
score is a cosine similarity (Radford et al. 2021, "Learning Transferable Visual Models From Natural
Language Supervision"). Saved as `config.json` + fp16 `model.safetensors`, like diffusers models.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from safetensors.torch import load_file, save_file
from torch import nn

from keypaint.errors import ModelError
from keypaint.models.compact import FILENAME as COMPACT
from keypaint.models.compact import load_compact
from keypaint.scorer.text import TEXT_DIM, SentenceEncoder

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
BUILTIN_DIR = Path(__file__).parent / "weights"  # the shipped scorer, once trained


@dataclass(frozen=True)
class ScorerConfig:
    """Shapes of the trainable part; saved beside the weights as config.json."""

    image_size: int = 64  # pictures are padded square on white and resized to this
    widths: tuple[int, ...] = (32, 64, 128, 256)  # channels of each ResNet stage (stage i>0 halves the size)
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # residual blocks per stage
    embed_dim: int = 256  # the shared image-text space
    text_dim: int = TEXT_DIM  # MiniLM sentence embedding size
    text_hidden: int = 512  # hidden width of the text projection MLP; 0 = a single linear layer
    max_text_tokens: int = 32  # tokenizer window of the frozen text encoder (keyword captions are short)
    init_temperature: float = 0.07  # CLIP's initial softmax temperature

    def to_json(self) -> str:
        return json.dumps({"model_type": "keypaint-scorer", **asdict(self)}, indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> ScorerConfig:
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**values)


class ResBlock(nn.Module):
    """Basic ResNet block (He et al. 2016): two 3x3 convs, identity or 1x1-projected shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(cout)
        nn.init.zeros_(self.norm2.weight)  # each block starts as identity: stable from-scratch training
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(h)) + self.shortcut(x))


class ImageTower(nn.Module):
    """Stride-2 stem, ResNet stages, global average pool, linear to the shared space."""

    def __init__(self, config: ScorerConfig) -> None:
        super().__init__()
        w = config.widths
        self.stem = nn.Sequential(nn.Conv2d(3, w[0], 3, 2, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU())
        layers: list[nn.Module] = []
        cin = w[0]
        for i, (cout, n) in enumerate(zip(w, config.blocks, strict=True)):
            for j in range(n):
                layers.append(ResBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(cin, config.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stages(self.stem(x))
        return self.head(h.mean(dim=(2, 3)))


class ScorerNet(nn.Module):
    """The trainable weights: image tower, text projection and the learned temperature."""

    def __init__(self, config: ScorerConfig) -> None:
        super().__init__()
        self.config = config
        self.image_tower = ImageTower(config)
        if config.text_hidden > 0:
            self.text_proj: nn.Module = nn.Sequential(
                nn.Linear(config.text_dim, config.text_hidden),
                nn.GELU(),
                nn.Linear(config.text_hidden, config.embed_dim),
            )
        else:
            self.text_proj = nn.Linear(config.text_dim, config.embed_dim)
        # logits = exp(logit_scale) * cos(image, text); CLIP initialises it to log(1 / 0.07)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1], (N, 3, S, S) -> unit vectors (N, embed_dim)."""
        return F.normalize(self.image_tower(pixels).float(), dim=-1)

    def encode_text_embeddings(self, sentence: torch.Tensor) -> torch.Tensor:
        """MiniLM sentence embeddings (N, 384) -> unit vectors (N, embed_dim)."""
        return F.normalize(self.text_proj(sentence).float(), dim=-1)


def image_to_array(image: Image.Image, size: int) -> np.ndarray:
    """RGB uint8 (size, size, 3): transparency flattened on white, padded square on white, resized."""
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    image = image.convert("RGB")
    if image.size != (size, size):
        image = ImageOps.pad(image, (size, size), method=Image.Resampling.BICUBIC, color=(255, 255, 255))
    return np.asarray(image, dtype=np.uint8)


def arrays_to_pixels(arrays: torch.Tensor) -> torch.Tensor:
    """uint8 (N, S, S, 3) -> float (N, 3, S, S) in [-1, 1]."""
    return arrays.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


class Scorer:
    """A trained scorer: `score(images, texts)` is the (images x texts) cosine similarity matrix."""

    def __init__(
        self, net: ScorerNet, device: str | torch.device = "cpu", text: SentenceEncoder | None = None
    ) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.config = net.config
        self._text = text

    def pick_best(self, images: list[Image.Image], prompt: str) -> tuple[int, torch.Tensor]:
        """(index of the picture that best matches `prompt`, every picture's score): what best-of keeps."""
        from keypaint.scorer.best_of import pick_best

        return pick_best(self, images, prompt)

    @classmethod
    def load(cls, folder: str | Path | None = None, device: str | torch.device = "cpu") -> Scorer:
        """Load `config.json` + `model.safetensors` from `folder` (None: the built-in scorer)."""
        folder = Path(folder) if folder is not None else BUILTIN_DIR
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        if not weights_path.is_file() and (folder / COMPACT).is_file():  # the shipped scorer: int8, expanded
            weights_path = folder / COMPACT
        if not config_path.is_file() or not weights_path.is_file():
            hint = " (train one with `keypaint train scorer DATA --out DIR`)" if folder == BUILTIN_DIR else ""
            raise ModelError(f"{folder}: not a scorer folder, needs {CONFIG_NAME} and {WEIGHTS_NAME}{hint}")
        try:
            data = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ModelError(f"{config_path}: unreadable scorer config: {err}") from err
        if data.get("model_type") != "keypaint-scorer":
            raise ModelError(
                f"{config_path}: not a keypaint scorer config (model_type={data.get('model_type')!r})"
            )
        net = ScorerNet(ScorerConfig.from_dict(data))
        if weights_path.name == COMPACT:
            state = load_compact(weights_path, torch.float32)
        else:
            state = {k: v.float() for k, v in load_file(weights_path).items()}
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ModelError(
                f"{weights_path}: weights do not fit the config (missing {missing}, extra {unexpected})"
            )
        return cls(net, device)

    def save(self, folder: str | Path) -> None:
        save_scorer(self.net, folder)

    @property
    def text_encoder(self) -> SentenceEncoder:
        """The frozen MiniLM, loaded on first use (image-only callers never pay for it)."""
        if self._text is None:
            self._text = SentenceEncoder(self.device, max_tokens=self.config.max_text_tokens)
        return self._text

    @torch.inference_mode()
    def image_features(self, images: list[Image.Image], batch_size: int = 256) -> torch.Tensor:
        """Unit vectors (N, embed_dim), float32, on the scorer's device."""
        size = self.config.image_size
        out = []
        for start in range(0, len(images), batch_size):
            arrays = np.stack([image_to_array(im, size) for im in images[start : start + batch_size]])
            pixels = arrays_to_pixels(torch.from_numpy(arrays).to(self.device))
            out.append(self.net.encode_images(pixels))
        return torch.cat(out) if out else torch.zeros(0, self.config.embed_dim, device=self.device)

    @torch.inference_mode()
    def text_features(self, texts: list[str]) -> torch.Tensor:
        """Unit vectors (N, embed_dim), float32, on the scorer's device."""
        return self.net.encode_text_embeddings(self.text_encoder.encode(texts))

    def score(self, images: list[Image.Image], texts: list[str]) -> torch.Tensor:
        """Cosine similarity, shape (len(images), len(texts)), in [-1, 1]; higher = a better match."""
        return self.image_features(images) @ self.text_features(texts).T


def save_scorer(net: ScorerNet, folder: str | Path) -> None:
    """Write config.json + fp16 model.safetensors; each file replaced atomically (temp + rename)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in net.state_dict().items()}
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    tmp = folder / f".{WEIGHTS_NAME}.tmp"
    save_file(state, tmp, metadata={"format": "pt"})
    os.replace(tmp, folder / WEIGHTS_NAME)
    tmp = folder / f".{CONFIG_NAME}.tmp"
    tmp.write_text(net.config.to_json() + "\n", encoding="utf-8")
    os.replace(tmp, folder / CONFIG_NAME)
