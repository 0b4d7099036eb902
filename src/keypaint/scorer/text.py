"""The scorer's frozen text tower: all-MiniLM-L6-v2 sentence embeddings (mean-pooled, L2-normalised).

The same pooling as sentence-transformers' `Pooling(mean)` + `Normalize`: token states averaged over the
attention mask. Only the projection on top of these 384-d vectors is trained, so training encodes each
distinct text once and caches the result. The encoder itself is the built-in model's
(`keypaint.builtin.text_encoder`), so `KEYPAINT_MINILM_DIR` works here too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from keypaint.builtin.text_encoder import CONTEXT_DIM, load_text_encoder

TEXT_DIM = CONTEXT_DIM  # MiniLM-L6 hidden size, 384


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of token states where `mask` is 1: sentence-transformers' mean pooling."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class SentenceEncoder:
    """Texts -> L2-normalised 384-d MiniLM sentence embeddings (float32), in batches, without gradients."""

    def __init__(
        self, device: str | torch.device, dtype: torch.dtype = torch.float32, max_tokens: int = 32
    ) -> None:
        self.device = torch.device(device)
        self.max_tokens = max_tokens
        self.tokenizer, self.bert = load_text_encoder(self.device, dtype)

    @torch.inference_mode()
    def encode(self, texts: list[str], batch_size: int = 1024) -> torch.Tensor:
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.bert(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).last_hidden_state
            out.append(F.normalize(mean_pool(hidden.float(), batch["attention_mask"]), dim=-1))
        if not out:
            return torch.zeros(0, TEXT_DIM, device=self.device)
        return torch.cat(out)
