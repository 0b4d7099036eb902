"""Sample pictures while training: the sample prompt painted with the weights as they are at a step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from keypaint.finetune.config import FinetuneConfig
from keypaint.finetune.textual_inversion import embedding_tensors
from keypaint.models.adapter_format import FinetuneInfo
from keypaint.models.loaded import LoadedModel


class SamplePainter:
    """Paints the sample prompt with the weights as they are at a step, into RUN/samples."""

    def __init__(
        self, model: LoadedModel, cfg: FinetuneConfig, run_dir: Path, fingerprint: str, first_caption: str
    ) -> None:
        self.model, self.cfg, self.fingerprint = model, cfg, fingerprint
        self.folder = run_dir / "samples"
        self.prompt = cfg.sample_prompt or first_caption
        self._painter: Any = None

    def paint(self, step: int, vectors: list[torch.nn.Parameter]) -> Path:
        from keypaint.core.painter import Painter
        from keypaint.core.params import GenerationParams

        if self._painter is None:
            self._painter = Painter(self.model, home=self.cfg.home)
        self.folder.mkdir(parents=True, exist_ok=True)
        embeddings: tuple[str, ...] = ()
        if vectors:
            path = self.folder / f"step-{step:06d}.safetensors"
            info = FinetuneInfo(
                method=self.cfg.method.value,
                token=self.cfg.token,
                base_model=self.model.name,
                base_sha256=self.fingerprint,
                base_kind=self.model.kind.value,
                steps=step,
            )
            path.unlink(missing_ok=True)
            save_file(embedding_tensors(self.model, vectors), str(path), metadata=info.to_header())
            embeddings = (str(path),)
        params = GenerationParams(prompt=self.prompt, seed=self.cfg.seed, steps=20, embeddings=embeddings)
        [result] = self._painter.generate(params)
        image_path = self.folder / f"step-{step:06d}.png"
        result.image.save(image_path)
        return image_path
