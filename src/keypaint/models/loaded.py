"""`LoadedModel`: a model ready to paint, whatever format it came from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # diffusers is heavy and only typed here
    import numpy as np
    import torch
    from diffusers import DiffusionPipeline

    from keypaint.keywords.vocabulary import Expansion, Vocabulary


class ModelKind(StrEnum):
    """The architecture family: decides the text encoders and the conditioning the U-Net expects."""

    SD1 = "sd1"  # CLIP ViT-L/14 text encoder, 768-d context
    SD2 = "sd2"  # OpenCLIP ViT-H/14 text encoder, 1024-d context
    SDXL = "sdxl"  # two text encoders (CLIP ViT-L + OpenCLIP bigG), pooled embeds and size conditioning
    KEYPAINT = "keypaint"  # the built-in model: MiniLM (BERT) text encoder, 384-d context
    SD3 = "sd3"  # SD 3 / 3.5: an MMDiT transformer on CLIP-L + CLIP-G + T5-XXL, rectified flow
    FLUX = "flux"  # Flux.1 dev/schnell: an MMDiT transformer on CLIP-L (pooled) + T5-XXL, rectified flow

    @property
    def is_xl(self) -> bool:
        return self is ModelKind.SDXL

    @property
    def is_flow(self) -> bool:
        """A rectified-flow transformer (SD3, Flux): x_t = (1 - t) x_0 + t noise; it predicts velocity."""
        return self in (ModelKind.SD3, ModelKind.FLUX)


@dataclass
class LoadedModel:
    """The components of one model, held by a text-to-image diffusers pipeline, plus where they came from.

    `pipe` is a `StableDiffusionPipeline`, `StableDiffusionXLPipeline`, `StableDiffusion3Pipeline` or
    `FluxPipeline`; other modes reuse its components. `denoiser` is its U-Net or its transformer.
    """

    name: str  # what infotext writes as "Model:" (file stem or folder name)
    kind: ModelKind
    pipe: DiffusionPipeline
    sha256: str | None = None  # of the checkpoint file (A1111's "Model hash" is its first 10 hex digits)
    source: Path | None = None  # file or folder it was loaded from; None for models built in memory
    vocabulary: Vocabulary | None = None  # keywords the model was trained with and their tags, if known
    aliases: tuple[str, ...] = ()  # hashes of the same weights stored otherwise (the fp16 of a compact U-Net)

    @property
    def short_hash(self) -> str | None:
        return self.sha256[:10] if self.sha256 else None

    def expand(self, prompt: str, skip: Iterable[str] = ()) -> Expansion:
        """`prompt` with the tags of each keyword this model knows or finds by meaning (else unchanged).

        Keywords naming a word of `skip` (LoRA names, embedding triggers) are not matched by meaning."""
        from keypaint.keywords.vocabulary import Expansion

        if self.vocabulary is None:
            return Expansion(prompt)
        by_meaning = self.vocabulary.meaning is not None and self.kind is ModelKind.KEYPAINT
        return self.vocabulary.expand(prompt, self.sentence_embeddings if by_meaning else None, skip)

    def sentence_embeddings(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled, unit-length token states of the model's own text encoder (`keywords.meaning`)."""
        from keypaint.keywords.meaning import sentence_embeddings

        return sentence_embeddings(self.pipe.tokenizer, self.pipe.text_encoder, texts)

    @property
    def denoiser(self) -> torch.nn.Module:
        """The network of the reverse chain: the U-Net, or a flow model's transformer."""
        return self.pipe.transformer if self.kind.is_flow else self.pipe.unet

    @property
    def inpainting(self) -> bool:
        """An inpainting checkpoint: its U-Net takes 9 channels (latent, mask, masked-image latent)."""
        return not self.kind.is_flow and int(self.pipe.unet.config.in_channels) == 9

    @property
    def native_size(self) -> int:
        """The picture size the model was trained at, in pixels (SD3 and Flux: 1024)."""
        if self.kind.is_flow:
            return int(self.pipe.default_sample_size) * int(self.pipe.vae_scale_factor)
        return int(self.pipe.unet.config.sample_size) * int(self.pipe.vae_scale_factor)

    @property
    def device(self) -> str:
        return str(self.denoiser.device)
