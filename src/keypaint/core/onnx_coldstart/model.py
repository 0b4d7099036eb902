"""`ColdStartModel`: the built-in model painted from its frozen bundle with ONNX Runtime and numpy alone.

Same steps, same numbers as the diffusers pipeline on the CPU fast path: keypaint's chunked prompt
encoding (A1111 emphasis), x_T from the seed as PyTorch draws it (`noise`), classifier-free guidance as
the pipeline applies it, the sampler as its linear plan (`plan`), the VAE decoder and the pipeline's
rounding to 8 bits. A process that paints this way never imports PyTorch or diffusers, which is most of
a cold start on a small CPU.
"""

from __future__ import annotations

import importlib.util
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from keypaint.core.onnx_coldstart.bundle import (
    Manifest,
    bundle_dir,
    model_digest,
    read_manifest,
    shape_key,
)
from keypaint.core.onnx_coldstart.plan import SamplerPlan
from keypaint.core.sampling_math import guide_batch, start_noise_numpy
from keypaint.core.speed.options import Offload
from keypaint.core.speed.sessions import open_session
from keypaint.errors import ModelError
from keypaint.prompts.chunks import SpecialTokens, empty_chunk, tokenize_chunks

if TYPE_CHECKING:
    import onnxruntime

    from keypaint.core.params import GenerationParams
    from keypaint.core.speed.options import SpeedOptions
    from keypaint.keywords.vocabulary import Expansion, Vocabulary
    from keypaint.models.registry import BuiltinModel

TEXT_ENCODER = "text-encoder/model.onnx"
TOKENIZER = "tokenizer.json"
StepLatents = Callable[[int, np.ndarray], None]  # (0-based U-Net call, latents after it)


class BundleTokenizer:
    """The `tokenizers` file the full path saved, with the slice of the transformers API chunking uses."""

    def __init__(self, path: Path, window: int, pad_token: int) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path))
        self.model_max_length = window
        self.pad_token_id = pad_token

    def __call__(self, text: str | list[str], add_special_tokens: bool = True, **_: Any) -> dict[str, Any]:
        texts = [text] if isinstance(text, str) else text
        ids = [e.ids for e in self._tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)]
        return {"input_ids": ids[0] if isinstance(text, str) else ids}

    def padded(self, texts: list[str], window: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, attention mask), int64, each text cut to `window` tokens (its last one kept) and padded to
        `window` (the exported text encoder's fixed width)."""
        rows = []
        for e in self._tokenizer.encode_batch(texts, add_special_tokens=True):
            rows.append(e.ids if len(e.ids) <= window else [*e.ids[: window - 1], e.ids[-1]])
        width = window
        ids = np.array([r + [self.pad_token_id] * (width - len(r)) for r in rows], dtype=np.int64)
        mask = np.array([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=np.int64)
        return ids, mask


@dataclass
class FrozenJob:
    """One covered request, ready to run: its plan, conditioning and the graphs of its shapes."""

    plan: SamplerPlan
    context: np.ndarray  # (batch rows, tokens, dim): negatives then prompts under guidance
    unet: onnxruntime.InferenceSession
    vae: onnxruntime.InferenceSession
    guidance: float | None  # None: one U-Net row per picture (guidance scale <= 1)
    latent_shape: tuple[int, int, int]


class ColdStartModel:
    """A built-in model's frozen bundle, opened; graphs load on first use."""

    def __init__(self, folder: Path, manifest: Manifest, vocabulary: Vocabulary | None,
                 threads: int | None) -> None:
        self.folder = folder
        self.manifest = manifest
        self.vocabulary = vocabulary
        self.threads = threads
        self._sessions: dict[str, onnxruntime.InferenceSession] = {}
        self._tokenizer: BundleTokenizer | None = None

    @classmethod
    def open(cls, cache_dir: Path, weights: Path, text_encoder: Path, threads: int | None
             ) -> ColdStartModel | None:
        """The bundle of these model files, if a fast-path run wrote one; None otherwise."""
        folder = bundle_dir(cache_dir, model_digest(weights, text_encoder))
        manifest = read_manifest(folder)
        if manifest is None or not (folder / TEXT_ENCODER).is_file() or not (folder / TOKENIZER).is_file():
            return None
        from keypaint.keywords.vocabulary import Vocabulary

        return cls(folder, manifest, Vocabulary.beside(weights), threads)

    @property
    def name(self) -> str:
        return self.manifest.model

    @property
    def sha256(self) -> str:
        return self.manifest.sha256

    @property
    def native_size(self) -> int:
        return self.manifest.native_size

    def expand(self, prompt: str) -> Expansion:
        from keypaint.keywords.vocabulary import Expansion

        if self.vocabulary is None:
            return Expansion(prompt)
        by_meaning = self.vocabulary.meaning is not None and self._graph(TEXT_ENCODER) is not None
        return self.vocabulary.expand(prompt, self.sentence_embeddings if by_meaning else None)

    def sentence_embeddings(self, texts: list[str]) -> np.ndarray:
        """The full path's `LoadedModel.sentence_embeddings`, from the exported text encoder."""
        from keypaint.keywords.meaning import mean_pooled

        encoder = self._graph(TEXT_ENCODER)
        assert encoder is not None
        ids, mask = self.tokenizer.padded(texts, self.manifest.window)
        hidden = encoder.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return mean_pooled(hidden, mask)

    def prepare(self, params: GenerationParams, prompt: str, batch: int) -> FrozenJob | None:
        """The job for a batch of `params` (prompt already expanded); None if the bundle does not cover it."""
        if (params.mode != "txt2img" or params.loras or params.embeddings or params.best_of > 1
                or params.control_units or params.hires is not None or "<lora:" in params.prompt.lower()):
            return None
        plan = self.manifest.plan(params.sampler.value, params.steps)
        assert params.width is not None and params.height is not None
        scale, channels = self.manifest.vae_scale, self.manifest.latent_channels
        if plan is None or params.width % scale or params.height % scale or self._graph(TEXT_ENCODER) is None:
            return None
        latent = (channels, params.height // scale, params.width // scale)
        guided = params.guidance_scale > 1
        positive, negative = self.encode(prompt, params.negative_prompt)
        context = np.concatenate([negative] * batch + [positive] * batch if guided else [positive] * batch)
        rows = 2 * batch if guided else batch
        unet = self._graph(self.manifest.unet.get(shape_key((rows, *latent), context.shape)))
        vae = self._graph(self.manifest.vae.get(shape_key((batch, *latent))))
        if unet is None or vae is None:
            return None
        return FrozenJob(plan, context, unet, vae, params.guidance_scale if guided else None, latent)

    def run(self, job: FrozenJob, seeds: list[int], on_latents: StepLatents | None = None,
            should_stop: Callable[[], bool] | None = None) -> list[Image.Image]:
        """Paint one batch: picture i starts from seed i's noise."""
        plan = job.plan
        vectors = [start_noise_numpy(seeds, job.latent_shape)]
        for k, t in enumerate(plan.timesteps):
            latents = plan.combine(plan.inputs[k], vectors)
            rows = np.concatenate([latents, latents]) if job.guidance is not None else latents
            feed = {"sample": rows, "timestep": np.full((len(rows),), t, np.float32), "context": job.context}
            noise = job.unet.run(None, feed)[0]
            if job.guidance is not None:  # rows are [uncond, cond]
                noise = guide_batch(noise, np.float32(job.guidance))
            vectors.append(noise)
            if on_latents is not None:
                on_latents(k, plan.combine(plan.states[k], vectors))
            if should_stop is not None and should_stop():
                from keypaint.errors import Cancelled

                raise Cancelled("generation cancelled")
        latents = plan.combine(plan.states[-1], vectors) / np.float32(self.manifest.scaling_factor)
        pixels = job.vae.run(None, {"latents": latents.astype(np.float32)})[0]
        rgb = (np.clip(pixels / 2 + 0.5, 0, 1).transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
        return [Image.fromarray(picture) for picture in rgb]

    def encode(self, prompt: str, negative: str) -> tuple[np.ndarray, np.ndarray]:
        """(prompt, negative) conditioning, each (1, chunks x window, dim), as `encode_prompts` makes it."""
        tokenizer = self.tokenizer
        special = SpecialTokens.of(tokenizer)  # type: ignore[arg-type]
        chunked = [tokenize_chunks(tokenizer, text)[0] for text in (prompt, negative)]  # type: ignore[arg-type]
        n = max(len(chunks) for chunks in chunked)
        encoder = self._graph(TEXT_ENCODER)
        assert encoder is not None
        out = []
        for chunks in chunked:
            chunks = chunks + [empty_chunk(special)] * (n - len(chunks))
            ids = np.array([c.ids for c in chunks], dtype=np.int64)
            mask = np.array([[1] * c.length + [0] * (len(c.ids) - c.length) for c in chunks], dtype=np.int64)
            hidden = encoder.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            weights = np.array([c.weights for c in chunks], dtype=np.float32)
            out.append(_emphasise(hidden, weights).reshape(1, -1, hidden.shape[-1]))
        return out[0], out[1]

    @property
    def tokenizer(self) -> BundleTokenizer:
        if self._tokenizer is None:
            self._tokenizer = BundleTokenizer(self.folder / TOKENIZER, self.manifest.window,
                                              self.manifest.pad_token)
        return self._tokenizer

    def _graph(self, name: str | None) -> onnxruntime.InferenceSession | None:
        """The session of a graph the manifest names (relative to the bundle, or absolute)."""
        if name is None:
            return None
        if name not in self._sessions:
            path = self.folder / name
            if not path.is_file():
                return None
            try:
                self._sessions[name] = open_session(path, self.threads)
            except Exception:  # ONNX Runtime's own error types: a damaged graph is skipped (full path)
                return None
        return self._sessions[name]


def _emphasise(z: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`keypaint.prompts.encode._emphasise` in numpy: scale by weight, then restore each chunk's mean."""
    if bool((weights == 1).all()):
        return z
    mean = z.mean(axis=(1, 2), keepdims=True)
    z = z * weights[..., None]
    new_mean = z.mean(axis=(1, 2), keepdims=True)
    return z * np.where(new_mean == 0, np.float32(1), mean / np.where(new_mean == 0, 1, new_mean))


def frozen_fits(device: str | None, dtype: str | None) -> bool:
    """The frozen bundle paints fp32 on a CPU: asked for, or "auto" on a machine with no GPU device."""
    if dtype not in (None, "", "auto", "fp32", "float32"):
        return False
    if device == "cpu":
        return True
    if device not in (None, "", "auto"):
        return False
    gpu_nodes = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")
    apple_gpu = platform.system() == "Darwin" and platform.machine() == "arm64"
    return not apple_gpu and not any(Path(node).exists() for node in gpu_nodes)


def open_builtin(speed: SpeedOptions, home: Path | None, device: str | None, dtype: str | None,
                 builtin: BuiltinModel | None) -> ColdStartModel | None:
    """The built-in model's frozen bundle (`builtin`: the model, handed down; None: none), when `speed`
    asks for the frozen CPU path, the model's files are installed and a bundle exists."""
    if builtin is None or not (speed.fast and speed.frozen) or speed.backend not in ("auto", "onnxruntime"):
        return None
    if not frozen_fits(device, dtype):
        return None
    if speed.approximate or speed.offload is not Offload.NONE or speed.vae_tiling:
        return None
    from keypaint.core.speed.artefacts import default_cache_dir

    if importlib.util.find_spec("onnxruntime") is None:
        return None
    try:
        text_encoder = builtin.text_encoder()
    except ModelError:
        return None  # the full path says what is missing when the model loads
    cache = speed.cache_dir or default_cache_dir(home)
    return ColdStartModel.open(cache, builtin.weights, text_encoder, speed.threads)
