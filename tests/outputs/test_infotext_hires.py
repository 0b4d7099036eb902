"""The hires fix and outpainting in A1111's infotext: written as A1111 writes them, read back by --from."""

from __future__ import annotations

from PIL import Image

from keypaint.core.hires import HiresOptions
from keypaint.core.outpaint import Outpaint
from keypaint.core.params import GenerationParams
from keypaint.outputs.infotext import build_infotext, params_from_infotext

HIRES = GenerationParams(prompt="red apple", steps=20, seed=7, width=128, height=128,
                         hires=HiresOptions(scale=2, upscaler="Latent", steps=10, strength=0.55))


def line(params: GenerationParams) -> str:
    text = build_infotext(params, seed=params.seed, width=params.width or 0, height=params.height or 0,
                          model_name="m", model_hash=None)
    return text.splitlines()[-1]


def test_hires_fields_are_a1111s_and_read_back() -> None:
    written = line(HIRES)
    assert ("Size: 128x128, Model: m, Denoising strength: 0.55, Hires upscale: 2, Hires steps: 10, "
            "Hires upscaler: Latent, ") in written
    assert params_from_infotext(f"red apple\n{written}") == HIRES
    resized = GenerationParams(prompt="a", seed=1, width=64, height=64,
                               hires=HiresOptions(resize_x=256, resize_y=192, upscaler="Lanczos"))
    assert "Hires resize: 256x192, Hires upscaler: Lanczos" in line(resized)
    assert params_from_infotext(f"a\n{line(resized)}") == resized


def test_an_a1111_hires_infotext_is_read() -> None:
    text = ("cat\nSteps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, "
            "Denoising strength: 0.7, Hires upscale: 1.5, Hires upscaler: 4x-UltraSharp, Version: v1.10.1")
    params = params_from_infotext(text)
    assert params.hires == HiresOptions(scale=1.5, upscaler="4x-UltraSharp", strength=0.7)
    assert params.strength == GenerationParams(prompt="x").strength  # the strength was the second pass's


def test_outpaint_is_written_and_read_back() -> None:
    params = GenerationParams(prompt="a", seed=1, width=96, height=72, init_image=Image.new("RGB", (64, 64)),
                              strength=0.9, outpaint=Outpaint(left=32, up=8))
    written = line(params)
    assert "Denoising strength: 0.9" in written and "Outpaint: " in written
    again = params_from_infotext(f"a\n{written}", init_image=params.init_image)
    assert again.outpaint == params.outpaint and again.mode == "outpaint"
