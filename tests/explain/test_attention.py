"""Cross-attention per keyword: token positions, the recorder's sums, restored processors, bad keywords."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.errors import InvalidParams
from keypaint.explain.attention import (
    AttentionSums,
    attention_maps,
    keyword_shares,
    keyword_tokens,
    save_attention,
)
from keypaint.models.tiny import clip_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return clip_tokenizer()


def test_keyword_positions_skip_the_start_token_and_emphasis(tokenizer) -> None:
    # <start> red apple , fruit <end>: positions 1-2 and 4
    assert keyword_tokens(tokenizer, "red apple, (fruit:1.3)") == {"red apple": [1, 2], "(fruit:1.3)": [4]}
    assert keyword_tokens(tokenizer, "red apple, fruit", ["Apple", "FRUIT"]) == {"Apple": [2], "FRUIT": [4]}
    # a keyword given twice collects both places
    assert keyword_tokens(tokenizer, "apple, pear, apple")["apple"] == [1, 5]


def test_keyword_positions_run_on_into_the_next_chunk(tokenizer) -> None:
    filler = ", ".join(["cat"] * 40)  # 79 tokens: the prompt needs a second 77-token window
    positions = keyword_tokens(tokenizer, f"{filler}, green banana", ["green banana"])["green banana"]
    assert all(p > 77 for p in positions) and len(positions) == 2


def test_keyword_not_in_the_prompt(tokenizer) -> None:
    message = r"keyword: 'banana' is not in the prompt; its keywords: 'red apple'"
    with pytest.raises(InvalidParams, match=message):
        keyword_tokens(tokenizer, "red apple", ["banana"])


def test_sums_keep_only_the_conditional_half() -> None:
    """With guidance the batch is [negative, positive]: only the positive prompt's attention counts."""
    sums = AttentionSums(4, 4, conditional_half=True)
    heads, positions, tokens = 2, 4, 3
    probs = torch.zeros(2, heads, positions, tokens)
    probs[0, :, :, 0] = 1  # negative prompt: all on token 0
    probs[1, :, :, 1] = 1  # prompt: all on token 1
    sums.add(probs.reshape(2 * heads, positions, tokens), batch=2, positions=positions)
    assert sums.sums is not None and sums.sums.shape == (3, 4, 4)  # 2x2 positions upsampled to the latent
    torch.testing.assert_close(sums.sums[1], torch.ones(4, 4))
    assert float(sums.sums[0].abs().sum()) == 0 and sums.calls == 1


@pytest.mark.parametrize("cfg", [7.0, 1.0])
def test_maps_sum_to_one_per_layer_call_and_processors_come_back(painter: Painter, cfg: float,
                                                                 tmp_path: Path) -> None:
    unet = painter.model.pipe.unet
    before = dict(unet.attn_processors)
    params = GenerationParams(prompt="red apple, fruit", steps=2, seed=5, guidance_scale=cfg)
    result = attention_maps(painter, params)
    assert all(unet.attn_processors[name] is proc for name, proc in before.items())
    # tiny U-Net: 4 cross-attention layers (down, mid, 2 up) x 2 calls
    assert result.layer_calls == 8
    assert result.token_sums.shape == (77, 8, 8)
    # softmax over the tokens: every latent position's attention sums to 1 per layer call
    torch.testing.assert_close(result.token_sums.sum(0), torch.full((8, 8), 8.0))
    assert list(result.maps) == ["red apple", "fruit"]
    torch.testing.assert_close(result.maps["fruit"], result.token_sums[4] / 8)
    assert all(float(m.min()) >= 0 for m in result.maps.values())
    # the picture is the one `generate` makes: attention recording changes nothing
    [plain] = painter.generate(params)
    assert np.abs(np.asarray(plain.image, np.int16) - np.asarray(result.image, np.int16)).max() <= 1

    written = save_attention(result, tmp_path / "a.png", tmp_path / "a.npz")
    data = np.load(written[1])
    assert list(data["keywords"]) == ["red apple", "fruit"] and data["maps"].shape == (2, 8, 8)
    with Image.open(written[0]) as image:
        assert image.format == "PNG"


def test_unknown_keyword_fails_before_generating(painter: Painter) -> None:
    with pytest.raises(InvalidParams, match="'pear' is not in the prompt"):
        attention_maps(painter, GenerationParams(prompt="red apple", steps=2, seed=1), ["pear"])


def test_shares_split_each_position_between_the_keywords() -> None:
    sun = torch.tensor([[3.0, 1.0], [1.0, 1.0]])
    sky = torch.tensor([[1.0, 1.0], [1.0, 3.0]])
    shares = keyword_shares({"sun": sun, "sky": sky})
    torch.testing.assert_close(shares["sun"] + shares["sky"], torch.ones(2, 2))
    assert float(shares["sun"][0, 0]) == 0.75 and float(shares["sky"][1, 1]) == 0.75
