"""`core.hires`: the hires fix's options, their sizes as A1111 computes them, JSON and infotext forms."""

from __future__ import annotations

import pytest

from keypaint.core.hires import HiresOptions
from keypaint.core.params import GenerationParams, Limits
from keypaint.core.planning import fill_in
from keypaint.errors import InvalidParams


@pytest.mark.parametrize(("options", "cover", "final"), [
    (HiresOptions(scale=2), (64, 96), (64, 96)),
    (HiresOptions(scale=1.5), (48, 72), (48, 72)),
    (HiresOptions(scale=1.3), (40, 56), (40, 56)),  # rounded down to the latents' grid of 8 px
    (HiresOptions(resize_x=96), (96, 144), (96, 144)),  # the other side from the aspect ratio
    (HiresOptions(resize_y=96), (64, 96), (64, 96)),
    (HiresOptions(resize_x=96, resize_y=96), (96, 144), (96, 96)),  # cover, then the centre is kept
    (HiresOptions(resize_x=128, resize_y=64), (128, 192), (128, 64)),
])
def test_target_sizes_follow_a1111(options: HiresOptions, cover: tuple[int, int],
                                   final: tuple[int, int]) -> None:
    assert options.target(32, 48) == (cover, final)


@pytest.mark.parametrize(("options", "message"), [
    (HiresOptions(scale=0.5), "scale must be within [1, 8]"),
    (HiresOptions(scale=True), "scale must be a number"),  # type: ignore[arg-type]
    (HiresOptions(strength=0.0), "strength must be within (0, 1]"),
    (HiresOptions(strength=1.5), "strength must be within (0, 1]"),
    (HiresOptions(steps=-1), "steps must be at least 0"),
    (HiresOptions(resize_x=100), "resize_x must be a multiple of 8"),
    (HiresOptions(upscaler=" "), "upscaler must be a name"),
])
def test_bad_options_are_refused_by_name(options: HiresOptions, message: str) -> None:
    with pytest.raises(InvalidParams, match="hires") as err:
        GenerationParams(prompt="apple", hires=options).validate()
    assert message in str(err.value)


def test_hires_is_a_txt2img_second_pass_and_its_size_fits_the_budget() -> None:
    from PIL import Image

    with pytest.raises(InvalidParams, match="drop the init image"):
        GenerationParams(prompt="a", hires=HiresOptions(), init_image=Image.new("RGB", (32, 32))).validate()
    params = GenerationParams(prompt="a", width=512, height=512, hires=HiresOptions(scale=4))
    with pytest.raises(InvalidParams, match="2048x2048 is over the pixel budget"):
        fill_in(params, 128, Limits(max_pixels=1024 * 1024))
    assert fill_in(params, 128, Limits(max_pixels=2048 * 2048)).hires == HiresOptions(scale=4)


def test_json_and_infotext_forms_round_trip() -> None:
    options = HiresOptions(scale=1.5, upscaler="4x-Tiny", steps=7, strength=0.45)
    assert HiresOptions.from_json(options.to_json()) == options
    assert options.infotext() == {"Hires upscale": 1.5, "Hires steps": 7, "Hires upscaler": "4x-Tiny",
                                  "Denoising strength": 0.45}
    resized = HiresOptions(resize_x=256, resize_y=0)
    assert resized.infotext()["Hires resize"] == "256x0"
    read = {k: str(v) for k, v in resized.infotext().items()}
    assert HiresOptions.from_infotext(read) == resized
    assert HiresOptions.from_infotext({"Steps": "20"}) is None
    with pytest.raises(InvalidParams, match="hires"):
        HiresOptions.from_json({"scale": 2, "colour": "red"})
    with pytest.raises(InvalidParams, match="wrong type"):
        HiresOptions.from_json({"steps": "7"})
