"""SD3 and Flux.1 through the Painter: flow samplers, shift, distilled guidance, seeds, infotext as Forge
writes it, img2img and inpainting, on tiny random models (2 steps, 32 px)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from PIL import Image
from sd_parsers import ParserManager

from keypaint.core.codec import params_from_json, params_to_json
from keypaint.core.flow import FlowOptions, make_flow_scheduler, resolve_flow
from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams
from keypaint.models.loaded import LoadedModel, ModelKind
from keypaint.models.tiny import tiny_model
from keypaint.models.tiny_flow import tiny_flow_model, tiny_flux_pipeline
from keypaint.outputs.infotext import params_from_infotext
from keypaint.outputs.metadata import params_from_metadata, read_metadata
from keypaint.outputs.results import infotext_for, save_generated


@pytest.fixture(scope="module")
def flux() -> Painter:
    return Painter(tiny_flow_model(ModelKind.FLUX))


@pytest.fixture(scope="module")
def sd3() -> Painter:
    return Painter(tiny_flow_model(ModelKind.SD3))


def small(**kwargs: object) -> GenerationParams:
    base = {"prompt": "red apple", "steps": 2, "width": 32, "height": 32, "seed": 7}
    return GenerationParams(**{**base, **kwargs})  # type: ignore[arg-type]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize("which", ["flux", "sd3"])
def test_same_seed_same_picture_other_seed_other_picture(which: str, request: pytest.FixtureRequest) -> None:
    painter: Painter = request.getfixturevalue(which)
    [a] = painter.generate(small())
    [b] = painter.generate(small())
    [c] = painter.generate(small(seed=8))

    assert a.image.size == (32, 32)
    assert np.array_equal(pixels(a.image), pixels(b.image))
    assert not np.array_equal(pixels(a.image), pixels(c.image))


def test_batch_item_i_is_the_picture_of_seed_plus_i(flux: Painter) -> None:
    batch = flux.generate(small(batch_size=2))
    [alone] = flux.generate(small(seed=8))

    assert [r.seed for r in batch] == [7, 8]
    assert np.abs(pixels(batch[1].image) - pixels(alone.image)).max() <= 1


def test_default_sampler_means_euler_and_flux_dev_gets_distilled_guidance(flux: Painter,
                                                                          sd3: Painter) -> None:
    [picture] = flux.generate(small())
    [sd3_picture] = sd3.generate(small())

    assert picture.params.sampler is Sampler.EULER and sd3_picture.params.sampler is Sampler.EULER
    assert picture.params.flow == FlowOptions(distilled_guidance=3.5)
    assert "Distilled CFG Scale: 3.5" in infotext_for(picture)
    assert sd3_picture.params.flow == FlowOptions() and "Distilled" not in infotext_for(sd3_picture)


def test_distilled_guidance_and_shift_change_the_picture(flux: Painter) -> None:
    [plain] = flux.generate(small())
    [guided] = flux.generate(small(flow=FlowOptions(distilled_guidance=9.0)))
    [shifted] = flux.generate(small(flow=FlowOptions(shift=6.0)))

    assert not np.array_equal(pixels(plain.image), pixels(guided.image))
    assert not np.array_equal(pixels(plain.image), pixels(shifted.image))
    assert "Shift: 6" in infotext_for(shifted)


@pytest.mark.parametrize("sampler", [Sampler.HEUN, Sampler.DPMPP_2M, Sampler.UNIPC])
def test_sd3_samplers_paint_reproducibly(sd3: Painter, sampler: Sampler) -> None:
    [a] = sd3.generate(small(sampler=sampler, flow=FlowOptions(shift=2.0)))
    [b] = sd3.generate(small(sampler=sampler, flow=FlowOptions(shift=2.0)))

    assert a.params.sampler is sampler
    assert np.array_equal(pixels(a.image), pixels(b.image))


def test_what_flow_models_cannot_run_is_refused_with_the_alternatives(flux: Painter, sd3: Painter) -> None:
    with pytest.raises(InvalidParams, match=r"Euler a does not sample flow models.*use Euler"):
        sd3.generate(small(sampler=Sampler.EULER_A))
    with pytest.raises(InvalidParams, match="Heun does not sample flow models \\(flux\\)"):
        flux.generate(small(sampler=Sampler.HEUN))
    with pytest.raises(InvalidParams, match="SD3 takes no distilled guidance"):
        sd3.generate(small(flow=FlowOptions(distilled_guidance=3.0)))
    with pytest.raises(InvalidParams, match="width: must be a multiple of 16 for this flux model"):
        resolve_flow(small(width=520), "flux", True, 16)  # Flux.1: whole 2x2 patches of 8x latents


def test_schnell_takes_no_distilled_guidance() -> None:
    schnell = Painter(LoadedModel("schnell", ModelKind.FLUX, tiny_flux_pipeline(dev=False)))

    [picture] = schnell.generate(small(steps=1))

    assert picture.params.flow == FlowOptions()
    with pytest.raises(InvalidParams, match="Flux schnell takes no distilled guidance"):
        schnell.generate(small(flow=FlowOptions(distilled_guidance=3.5)))


def test_flux_runs_true_cfg_only_with_a_negative_prompt(flux: Painter) -> None:
    [plain] = flux.generate(small(guidance_scale=4.0))
    [one] = flux.generate(small(guidance_scale=1.0))
    [negative] = flux.generate(small(guidance_scale=4.0, negative_prompt="blurry"))

    assert np.array_equal(pixels(plain.image), pixels(one.image))  # no negative: distilled guidance alone
    assert not np.array_equal(pixels(plain.image), pixels(negative.image))


@pytest.mark.parametrize("which", ["flux", "sd3"])
def test_img2img_and_inpainting(which: str, request: pytest.FixtureRequest) -> None:
    painter: Painter = request.getfixturevalue(which)
    source = Image.new("RGB", (32, 32), (200, 30, 30))
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))

    [changed] = painter.generate(small(init_image=source, strength=0.5, steps=4))
    [inpainted] = painter.generate(small(init_image=source, mask=mask, strength=1.0, steps=2))

    assert changed.image.size == inpainted.image.size == (32, 32)
    assert changed.params.mode == "img2img" and inpainted.params.mode == "inpaint"
    assert not np.array_equal(pixels(changed.image), pixels(inpainted.image))


def test_infotext_reads_back_as_forge_writes_it(flux: Painter, tmp_path: Path) -> None:
    [picture] = flux.generate(small(flow=FlowOptions(shift=2.5, distilled_guidance=4.0)))
    path = save_generated(picture, tmp_path)
    infotext = read_metadata(path).infotext
    assert infotext is not None

    read = params_from_infotext(infotext)
    stored = params_from_metadata(read_metadata(path))
    info = ParserManager().parse(path)

    assert "CFG scale: 7, Distilled CFG Scale: 4, Shift: 2.5, Seed: 7" in infotext
    assert read.flow == stored.flow == FlowOptions(shift=2.5, distilled_guidance=4.0)
    assert info is not None and info.metadata["Distilled CFG Scale"] == "4"
    [again] = flux.generate(stored)
    assert np.array_equal(pixels(again.image), pixels(picture.image))


def test_flow_options_check_and_travel_as_json() -> None:
    params = small(flow=FlowOptions(shift=3.0))
    assert params_from_json(params_to_json(params)).flow == FlowOptions(shift=3.0)
    with pytest.raises(InvalidParams, match="shift: must be within"):
        small(flow=FlowOptions(shift=0.0)).validate()
    with pytest.raises(InvalidParams, match="flow: must be"):
        params_from_json({"prompt": "x", "flow": {"shift": 1, "cfg": 2}})
    with pytest.raises(InvalidParams, match="shift and distilled guidance are for SD3 and Flux"):
        Painter(tiny_model(ModelKind.SD1)).resolve(small(flow=FlowOptions(shift=2.0)))


def test_shift_fixes_the_time_grid() -> None:
    base = {"shift": 3.0, "use_dynamic_shifting": True, "num_train_timesteps": 1000}
    straight = make_flow_scheduler(Sampler.EULER, base, 1.0)
    shifted = make_flow_scheduler(Sampler.EULER, base, 3.0)
    straight.set_timesteps(4)
    shifted.set_timesteps(4)

    assert isinstance(straight, FlowMatchEulerDiscreteScheduler) and not straight.config.use_dynamic_shifting
    def shift(t: np.ndarray | float) -> np.ndarray | float:
        return 3 * t / (1 + 2 * t)  # t' = s t / (1 + (s - 1) t), s = 3

    # diffusers' grid runs from t = 1 to the last trained step, 1/1000 (shifted too), then is shifted
    assert np.allclose(straight.sigmas[:4].numpy(), np.linspace(1.0, 0.001, 4), atol=1e-6)
    assert np.allclose(shifted.sigmas[:4].numpy(), shift(np.linspace(1.0, shift(0.001), 4)), atol=1e-6)


def test_vae_tiling_applies_and_u_net_speed_paths_are_refused() -> None:
    from keypaint.core.speed.options import SpeedOptions

    tiled = Painter(tiny_flow_model(ModelKind.FLUX), speed=SpeedOptions(vae_tiling=True))
    [picture] = tiled.generate(small())

    assert tiled.model.pipe.vae.use_tiling and picture.image.size == (32, 32)
    with pytest.raises(InvalidParams, match="--fast, DeepCache and token merging run U-Net models"):
        Painter(tiny_flow_model(ModelKind.SD3), speed=SpeedOptions(deep_cache=2))


def test_fp8_weights_keep_the_picture_close_and_are_recorded() -> None:
    from keypaint.core.speed.options import SpeedOptions
    from keypaint.explain.latent import psnr

    [plain] = Painter(tiny_flow_model(ModelKind.FLUX)).generate(small())
    stored = Painter(tiny_flow_model(ModelKind.FLUX), speed=SpeedOptions(fp8_weights=True))
    [picture] = stored.generate(small())

    weight = stored.model.pipe.transformer.transformer_blocks[0].attn.to_q.weight
    t5_weight = stored.model.pipe.text_encoder_2.encoder.block[0].layer[1].DenseReluDense.wi_0.weight
    assert weight.dtype == t5_weight.dtype == torch.float8_e4m3fn  # half of fp16's memory at rest
    assert picture.extra["FP8 weights"] == "e4m3fn" and "FP8 weights: e4m3fn" in infotext_for(picture)
    assert psnr(plain.image, picture.image) > 20
