"""Where each keyword went: cross-attention maps per keyword, summed over steps and layers (as DAAM does).

At every cross-attention layer the picture's h x w positions (queries) attend over the prompt's tokens
(keys): A = softmax(Q K^T / sqrt(d)) (Rombach et al. 2022, Sec. 3.3; Vaswani et al. 2017). A keyword's map
is the attention its tokens received, averaged over heads, upsampled to the latent size and summed over
layers and U-Net calls (Tang et al. 2022, DAAM). Recording uses diffusers' attention-processor API: each
cross-attention layer's processor is wrapped for the run and the originals are put back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from matplotlib import colormaps
from PIL import Image

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.errors import InvalidParams
from keypaint.explain.figures import save_grid, save_npz, to_array
from keypaint.explain.reverse import record_reverse, uses_guidance
from keypaint.keywords.syntax import Fragment, keywords, parse_prompt_attention
from keypaint.prompts.chunks import SpecialTokens, tokenize_chunks


class AttentionSums:
    """Running sums of cross-attention probabilities per token, at the latent's resolution."""

    def __init__(self, height: int, width: int, conditional_half: bool) -> None:
        self.size = (height, width)
        self.conditional_half = conditional_half  # with guidance the batch is [negative, positive]
        self.sums: torch.Tensor | None = None  # (tokens, height, width)
        self.calls = 0  # layer calls added

    def add(self, probs: torch.Tensor, batch: int, positions: int) -> None:
        """probs: (batch * heads, positions, tokens) from one cross-attention layer."""
        probs = probs.float().reshape(batch, -1, positions, probs.shape[-1])
        if self.conditional_half:
            probs = probs[batch // 2 :]
        mean = probs.mean(dim=(0, 1))  # (positions, tokens)
        h, w = self.size
        factor = round((h * w / positions) ** 0.5)
        grid = mean.T.reshape(1, -1, h // factor, w // factor)
        up = F.interpolate(grid, size=self.size, mode="bilinear", align_corners=False)[0].cpu()
        self.sums = up if self.sums is None else self.sums + up
        self.calls += 1


class CrossAttentionRecorder:
    """A processor that runs the layer's own processor and also records A = softmax(Q K^T / sqrt(d))."""

    def __init__(self, inner: Any, sums: AttentionSums) -> None:
        self.inner = inner
        self.sums = sums

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        output = self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        if encoder_hidden_states is not None:
            self._record(attn, hidden_states, encoder_hidden_states, attention_mask)
        return output

    def _record(self, attn: Attention, hidden: torch.Tensor, context: torch.Tensor,
                mask: torch.Tensor | None) -> None:
        # The same Q and K as diffusers' AttnProcessor computes them, then A = softmax(Q K^T * scale).
        if hidden.ndim == 4:
            hidden = hidden.flatten(2).transpose(1, 2)
        if attn.group_norm is not None:
            hidden = attn.group_norm(hidden.transpose(1, 2)).transpose(1, 2)
        if attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        batch, positions = hidden.shape[0], hidden.shape[1]
        mask = attn.prepare_attention_mask(mask, context.shape[1], batch)
        query = attn.head_to_batch_dim(attn.to_q(hidden))
        key = attn.head_to_batch_dim(attn.to_k(context))
        self.sums.add(attn.get_attention_scores(query, key, mask), batch, positions)


@contextmanager
def recording_cross_attention(unet: Any, sums: AttentionSums) -> Iterator[None]:
    """Wrap every cross-attention layer's processor (attn2) for the `with` block; restore them after."""
    original = dict(unet.attn_processors)
    wrapped = {name: CrossAttentionRecorder(proc, sums) if name.endswith("attn2.processor") else proc
               for name, proc in original.items()}
    unet.set_attn_processor(wrapped)
    try:
        yield
    finally:
        unet.set_attn_processor(original)


def _plain(keyword: str) -> str:
    """A keyword's text without A1111 emphasis syntax: "(red:1.3) apple" -> "red apple"."""
    return "".join(piece.text for piece in parse_prompt_attention(keyword) if isinstance(piece, Fragment))


def _find(sequence: list[int], part: list[int], start: int = 0) -> int:
    for i in range(start, len(sequence) - len(part) + 1):
        if sequence[i : i + len(part)] == part:
            return i
    return -1


def keyword_tokens(tokenizer: Any, prompt: str, wanted: list[str] | None = None) -> dict[str, list[int]]:
    """Each keyword's token positions in the prompt embeddings (chunks joined, start/end/padding skipped).

    `wanted` defaults to the prompt's keywords; a wanted keyword may also be a part of one ("apple" of
    "red apple"). One that the prompt does not contain is an `InvalidParams` error.
    """
    special = SpecialTokens.of(tokenizer)
    chunks, _ = tokenize_chunks(tokenizer, prompt)
    positions = [c * special.window + i for c, chunk in enumerate(chunks) for i in range(1, chunk.length - 1)]
    ids = [chunks[p // special.window].ids[p % special.window] for p in positions]

    def tokens(text: str) -> list[int]:
        return list(tokenizer(_plain(text), add_special_tokens=False)["input_ids"])

    # The prompt's own keywords, matched in order so that a repeated word maps to each of its places.
    own: dict[str, list[int]] = {}
    cursor = 0
    for keyword in keywords(prompt):
        part = tokens(keyword)
        at = _find(ids, part, cursor) if part else -1
        if at >= 0:  # a keyword given twice gets the attention of both places
            own.setdefault(keyword.casefold(), []).extend(positions[at : at + len(part)])
            cursor = at + len(part)
    result: dict[str, list[int]] = {}
    for keyword in wanted if wanted is not None else keywords(prompt):
        found = own.get(keyword.strip().casefold())
        if found is None:
            part = tokens(keyword)
            at = _find(ids, part) if part else -1
            if at < 0:
                known = ", ".join(repr(k) for k in keywords(prompt)) or "none"
                raise InvalidParams("keyword", f"{keyword!r} is not in the prompt; its keywords: {known}")
            found = positions[at : at + len(part)]
        result[keyword] = found
    return result


@dataclass
class AttentionMaps:
    """Per-keyword cross-attention of one generated picture."""

    image: Image.Image = field(repr=False)
    maps: dict[str, torch.Tensor] = field(repr=False)  # keyword -> (h, w), mean attention per layer call
    token_sums: torch.Tensor = field(repr=False)  # (tokens, h, w): every token's summed attention
    layer_calls: int  # cross-attention layer calls summed (layers x U-Net calls)
    params: GenerationParams


def attention_maps(
    painter: Painter, params: GenerationParams, wanted: list[str] | None = None
) -> AttentionMaps:
    """Generate `params` while recording cross-attention; one map per wanted keyword."""
    model = painter.model
    params = painter.resolve(params)
    positions = keyword_tokens(model.pipe.tokenizer, params.prompt, wanted)  # fail before any work
    assert params.width is not None and params.height is not None
    factor = model.pipe.vae_scale_factor
    sums = AttentionSums(params.height // factor, params.width // factor,
                         conditional_half=uses_guidance(model, params.guidance_scale))
    with recording_cross_attention(model.pipe.unet, sums):
        recording = record_reverse(painter, params)
    if sums.sums is None:
        raise InvalidParams("model", f"{model.name}'s U-Net has no cross-attention layers to record")
    maps = {k: sums.sums[p].sum(0) / sums.calls for k, p in positions.items()}
    return AttentionMaps(image=recording.image, maps=maps, token_sums=sums.sums, layer_calls=sums.calls,
                         params=recording.params)


def overlay(image: Image.Image, heat: torch.Tensor, scale: tuple[float, float] | None = None,
            alpha: float = 0.6) -> Image.Image:
    """The picture in grey with a map on top, upsampled bicubically, in inferno colours from `scale` =
    (low, high); None scales each map to its own min..max, as DAAM does."""
    up = F.interpolate(heat[None, None].float(), size=(image.height, image.width), mode="bicubic",
                       align_corners=False)[0, 0]
    low, high = scale if scale is not None else (float(up.min()), float(up.max()))
    scaled = ((up - low) / max(high - low, 1e-12)).clamp(0, 1).numpy()
    colours = colormaps["inferno"](scaled)[..., :3]
    base = np.asarray(image.convert("L").convert("RGB"), dtype=np.float32) / 255  # grey: the heat reads
    mixed = (1 - alpha) * base + alpha * colours
    return Image.fromarray((mixed * 255).round().astype(np.uint8))


def keyword_shares(maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each keyword's share of the attention all the mapped keywords got, per position (sums to 1).

    Raw maps of different keywords look alike (every content token is attended more on the object than on
    the background); the share shows which keyword won where.
    """
    stacked = torch.stack(list(maps.values()))
    shares = stacked / stacked.sum(0, keepdim=True).clamp(min=1e-12)
    return dict(zip(maps, shares, strict=True))


def save_attention(result: AttentionMaps, path: Path, npz: Path | None = None) -> list[Path]:
    """The picture and one overlay per keyword; with two or more keywords a second row of each keyword's
    share, labelled with its range. Every map is scaled to its own min..max. The raw maps as NPZ if asked."""
    names = list(result.maps)
    rows: list[list[Image.Image | None]] = [
        [result.image] + [overlay(result.image, result.maps[k]) for k in names]]
    labels = ["picture", *names]
    if len(names) > 1:
        shares = keyword_shares(result.maps)
        rows.append([None] + [overlay(result.image, shares[k]) for k in names])
        labels = ["picture"] + [f"{k}\nshare {float(shares[k].min()):.2f}..{float(shares[k].max()):.2f}"
                                for k in names]
    p = result.params
    title = f"cross-attention per keyword, {p.steps} steps x all layers, seed {p.seed}"
    if len(names) > 1:
        title += "\ntop: attention; bottom: share among the keywords (each map scaled min..max)"
    written = [save_grid(rows, path, col_labels=labels, title=title, cell_inches=1.8)]
    if npz is not None:
        maps = torch.stack([result.maps[k] for k in names]).numpy()
        written.append(save_npz(npz, keywords=np.array(names), maps=maps,
                                token_sums=result.token_sums.numpy(), image=to_array([result.image])))
    return written
