"""Token merging: the matching itself, the processor on a tiny real U-Net, and the option end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from keypaint.bench.measure import pixel_difference
from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.core.speed import SpeedOptions
from keypaint.core.speed.options import approximations
from keypaint.core.speed.tome import TokenMerging, _Grid, merge_plan
from keypaint.errors import InvalidParams
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_model


def test_each_2x2_cell_has_one_destination_drawn_the_same_every_time() -> None:
    src, dst = _Grid().split(6, 8, torch.device("cpu"))
    assert len(dst) == 12 and len(src) == 36
    assert sorted(torch.cat([src, dst]).tolist()) == list(range(48))
    cells = {(int(p) // 8 // 2, int(p) % 8 // 2) for p in dst}
    assert len(cells) == 12  # one per cell
    again_src, again_dst = _Grid().split(6, 8, torch.device("cpu"))
    assert torch.equal(dst, again_dst) and torch.equal(src, again_src)
    _, odd_dst = _Grid().split(5, 7, torch.device("cpu"))
    assert len(odd_dst) == 2 * 3 and all(int(p) // 7 < 4 and int(p) % 7 < 6 for p in odd_dst)


def reference_merge_roundtrip(x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, r: int) -> torch.Tensor:
    """ToMe's bipartite matching written as loops: each token's value after merge and unmerge."""
    out = x.clone()
    for row in range(x.shape[0]):
        unit = x[row] / x[row].norm(dim=-1, keepdim=True)
        scores = unit[src] @ unit[dst].T
        best, best_dst = scores.max(dim=-1)
        chosen = sorted(range(len(src)), key=lambda i: -float(best[i]))[:r]
        groups: dict[int, list[int]] = {}
        for i in chosen:
            groups.setdefault(int(best_dst[i]), []).append(int(src[i]))
        for d, members in groups.items():
            value = x[row, [int(dst[d]), *members]].mean(dim=0)
            out[row, [int(dst[d]), *members]] = value
    return out


def test_merge_averages_the_closest_sources_into_destinations_and_unmerge_copies_back() -> None:
    torch.manual_seed(0)
    src, dst = _Grid().split(8, 8, torch.device("cpu"))
    x = torch.randn(2, 64, 16)
    x[:, src[0]] = x[:, dst[3]] * 2  # the same direction as destination 3: merged into it
    merge, unmerge = merge_plan(x, src, dst, r=32)
    merged = merge(x)
    assert merged.shape == (2, 32, 16)  # 64 tokens, 32 merged away
    back = unmerge(merged)  # self-attention as the identity: what the block gets back
    assert torch.allclose(back, reference_merge_roundtrip(x, src, dst, 32), atol=1e-6)
    assert torch.allclose(back[:, src[0]], back[:, dst[3]])
    unchanged = (back - x).abs().amax(-1) < 1e-6
    assert (unchanged[:, src].sum(dim=1) >= 16).all()  # 48 sources, 32 merged: 16 stay as they were


def test_tome_changes_the_picture_a_little_is_repeatable_and_removable() -> None:
    model = tiny_model(ModelKind.SD1)
    params = GenerationParams(prompt="red apple", steps=4, seed=3)
    painter = Painter(model)
    plain = np.asarray(painter.generate(params)[0].image)
    merging = TokenMerging(model.pipe.unet, 0.5)
    assert merging.max_downsample == 2  # the tiny U-Net's first attention level is at half resolution
    merged = np.asarray(painter.generate(params)[0].image)
    assert np.array_equal(merged, np.asarray(painter.generate(params)[0].image))
    difference = pixel_difference(merged, plain)
    assert difference["max_pixel_diff"] > 0 and difference["psnr_db"] > 20
    merging.remove()
    assert np.array_equal(np.asarray(painter.generate(params)[0].image), plain)


def test_the_option_is_recorded_with_the_picture() -> None:
    painter = Painter(tiny_model(ModelKind.SD1), speed=SpeedOptions(token_merging=0.5))
    [result] = painter.generate(GenerationParams(prompt="red apple", steps=2, seed=1))
    assert result.extra["Token merging ratio"] == 0.5
    assert painter.speed.notes["token_merging"].ratio == 0.5
    assert approximations(SpeedOptions(deep_cache=2)) == {"DeepCache": 2}
    assert approximations(SpeedOptions()) == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (SpeedOptions(token_merging=0.9), "ratio in"),
        (SpeedOptions(token_merging=-0.1), "ratio in"),
        (SpeedOptions(token_merging=True), "ratio in"),  # type: ignore[arg-type]
        (SpeedOptions(fast=True, token_merging=0.5), "cannot be combined with fast"),
    ],
)
def test_bad_ratios_are_refused(options: SpeedOptions, message: str) -> None:
    with pytest.raises(InvalidParams, match=message) as err:
        options.validate()
    assert err.value.field == "token_merging"
    assert SpeedOptions(token_merging=0.5).approximate
