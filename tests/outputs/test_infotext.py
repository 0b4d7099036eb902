"""A1111 infotext: our layout, the A1111 parser's rules, and real infotexts written by A1111."""

from __future__ import annotations

import pytest
from PIL import Image

from keypaint.core.params import GenerationParams
from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams
from keypaint.outputs.infotext import (
    build_infotext,
    params_from_infotext,
    parse_infotext,
    quote,
    unquote,
)
from keypaint.versions import package_version

VERSION = f"keypaint {package_version('keypaint')}"

# Real infotexts as A1111 wrote them (prompts shortened where noted; parameter lines verbatim).
# The docstring example of A1111's `infotext_utils.parse_generation_parameters`.
A1111_DOCSTRING = (
    "girl with an artist's beret, determined, blue eyes, desert scene, computer monitors, heavy makeup, "
    "by Alphonse Mucha and Charlie Bowater, ((eyeshadow)), (coquettish), detailed, intricate\n"
    "Negative prompt: ugly, fat, obese, chubby, (((deformed))), [blurry], bad anatomy, disfigured, "
    "poorly drawn face, mutation, mutated, (extra_limb), (ugly), (poorly drawn hands), messy drawing\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b"
)
# A multi-line prompt with a LoRA tag, hires fix and ENSD (A1111 1.x, from hydrus-dd's tests).
A1111_MULTILINE = """(colorful:1.3),
dreamlike fantasy landscape where everything is a shade of pink,
 <lora:NAI-cutesexyrobutts:1>
Negative prompt: (worst quality:1.4), (low quality:1.4) , (monochrome:1.1)
Steps: 40, Sampler: DPM++ 2M Karras, CFG scale: 12, Seed: 2416682767, Size: 640x512, Model hash: 0f0eaaa61e, \
Model: pastelmix-better-vae-fp16, Denoising strength: 0.55, Clip skip: 2, ENSD: 31337, Hires upscale: 2, \
Hires steps: 20, Hires upscaler: Latent
"""
# A1111 v1.9.3 with a separate Schedule type and a quoted "Lora hashes" (prompt shortened).
A1111_V193 = (
    "white hair, single side braid, space hopper, garden, motion lines, "
    "<lora:fubuki:1> <lora:space_hopper:1>\n"
    "Negative prompt: bad fingers\n"
    "Steps: 20, Sampler: DPM++ 2M SDE, Schedule type: Karras, CFG scale: 7, Seed: 2245042501, Size: 512x768, "
    "Model hash: d4c1719023, Model: animekawa_v10, VAE hash: 735e4c3a44, "
    "VAE: vaeFtMse840000EmaPruned_vae.safetensors, Denoising strength: 0.6, Hires upscale: 2, "
    "Hires steps: 10, "
    'Hires upscaler: R-ESRGAN 4x+ Anime6B, Lora hashes: "fubuki: ce30cae7c555, space_hopper: f4112c058273", '
    "Version: v1.9.3"
)
# A1111 v1.5.1 with two quoted hash lists and no Seed (prompt shortened).
A1111_V151 = (
    "ink painting, jinx, <lora:zyd232_InkStyle_v1_0:1>\n"
    "Negative prompt: (EasyNegative), bad hand, extra legs ,(ng_deepnegative_v1_75t)\n"
    "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 5, Size: 960x540, Model hash: e3edb8a26f, "
    "Model: GhostMix-V2.0-fp16-BakedVAE, Denoising strength: 0.5, Clip skip: 2, Hires upscale: 2, "
    "Hires steps: 20, Hires upscaler: R-ESRGAN 4x+ Anime6B, "
    'Lora hashes: "zyd232_InkStyle_v1_0: 96718d4b1924, jinx: faecb6cfeccd", '
    'TI hashes: "EasyNegative: c74b4e810b03, ng_deepnegative_v1_75t: 54e7e4826d53", Version: v1.5.1'
)
# A1111 v1.9.4, LCM with "Schedule type: Automatic" (prompt shortened).
A1111_V194 = (
    "1girl,A superstar on stage.,, <lora:LCM_15:1>\n"
    "Negative prompt: MajicNegative_V2,badhandv4,\n"
    "Steps: 6, Sampler: LCM, Schedule type: Automatic, CFG scale: 1.5, Seed: 3748719078, Size: 768x1024, "
    "Model hash: 19bbe9faa4, Model: fantasticmix_k2, VAE hash: 07af11b95c, "
    "VAE: vae-ft-mse-840000-ema-pruned.safetensors, Clip skip: 2, "
    'Lora hashes: "LCM_15: aaebf6360f7d, ip-adapter-faceid-plusv2_sd15_lora: a95a0f4bdcb9", '
    'TI hashes: "MajicNegative_V2: a53884ef726b, badhandv4: 5e40d722fc3d", Downcast alphas_cumprod: True, '
    "Version: v1.9.4"
)


def _img2img(**kwargs: object) -> GenerationParams:
    return GenerationParams(init_image=Image.new("RGB", (64, 64)), **kwargs)  # type: ignore[arg-type]


def test_layout_is_a1111s() -> None:
    params = _img2img(prompt="a red apple, fruit", negative_prompt="blurry", steps=20,
                      sampler=Sampler.DPMPP_2M_KARRAS, guidance_scale=7.0, strength=0.75)
    text = build_infotext(params, seed=1, width=512, height=512, model_name="name", model_hash="0123456789")
    assert text == (
        "a red apple, fruit\n"
        "Negative prompt: blurry\n"
        "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, "
        f"Model hash: 0123456789, Model: name, Denoising strength: 0.75, Version: {VERSION}"
    )


def test_txt2img_has_no_negative_line_without_negative_and_no_denoising() -> None:
    params = GenerationParams(prompt="cat", guidance_scale=7.5, sampler=Sampler.EULER_A)
    text = build_infotext(params, seed=7, width=640, height=384, model_name=None, model_hash=None)
    assert text == (f"cat\nSteps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.5, Seed: 7, "
                    f"Size: 640x384, Version: {VERSION}")


def test_inpaint_writes_denoising_strength() -> None:
    image = Image.new("RGB", (64, 64))
    params = GenerationParams(prompt="cat", init_image=image, mask=Image.new("L", (64, 64)), strength=0.4)
    text = build_infotext(params, seed=1, width=64, height=64, model_name=None, model_hash=None)
    assert ", Denoising strength: 0.4, " in text
    assert parse_infotext(text)["Denoising strength"] == "0.4"


def test_full_sha256_is_written_as_a1111_short_hash() -> None:
    params = GenerationParams(prompt="cat")
    text = build_infotext(params, seed=1, width=64, height=64, model_name="m", model_hash="ab" * 32)
    assert parse_infotext(text)["Model hash"] == "ababababab"


def test_quoted_values_round_trip() -> None:
    extra = {
        "Lora hashes": "fubuki: ce30cae7c555, space_hopper: f4112c058273",
        "Hires upscaler": "4x: sharp",
        "Note": 'say "cheese"',
        "Lines": "one\ntwo",
        "Plain": "Latent",
        "Count": 3,
        "Ratio": 0.25,
    }
    params = GenerationParams(prompt="cat")
    text = build_infotext(params, seed=1, width=64, height=64, model_name="model, v2: final",
                          model_hash=None, extra=extra)
    assert 'Lora hashes: "fubuki: ce30cae7c555, space_hopper: f4112c058273"' in text
    assert "Plain: Latent," in text
    assert len(text.splitlines()) == 2  # the newline inside a value is escaped
    parsed = parse_infotext(text)
    assert parsed["Model"] == "model, v2: final"
    for key, value in extra.items():
        assert parsed[key] == str(value)
    assert parsed["Version"] == VERSION


def test_multiline_prompts_round_trip() -> None:
    params = GenerationParams(prompt="a castle,\non a hill\n\n(fog:1.2)", negative_prompt="blurry,\nlowres")
    text = build_infotext(params, seed=3, width=64, height=64, model_name=None, model_hash=None)
    parsed = parse_infotext(text)
    assert parsed["prompt"] == params.prompt
    assert parsed["negative_prompt"] == params.negative_prompt
    assert params_from_infotext(text) == GenerationParams(
        prompt=params.prompt, negative_prompt=params.negative_prompt, seed=3, width=64, height=64)


@pytest.mark.parametrize("sampler", list(Sampler))
def test_every_sampler_round_trips(sampler: Sampler) -> None:
    params = _img2img(prompt="p", negative_prompt="n", steps=33, guidance_scale=4.25, sampler=sampler,
                      strength=0.3)
    text = build_infotext(params, seed=123456789, width=768, height=512, model_name="m", model_hash="h")
    back = params_from_infotext(text)
    assert back == GenerationParams(prompt="p", negative_prompt="n", steps=33, guidance_scale=4.25,
                                    sampler=sampler, seed=123456789, width=768, height=512, strength=0.3)


def test_prompt_only_and_negative_only() -> None:
    empty = build_infotext(GenerationParams(prompt="", negative_prompt="ugly"), seed=1, width=64, height=64,
                           model_name=None, model_hash=None)
    assert empty.startswith("Negative prompt: ugly\nSteps: 20")
    assert parse_infotext(empty)["prompt"] == ""
    assert parse_infotext(empty)["negative_prompt"] == "ugly"


def test_a_last_line_with_fewer_than_three_fields_is_prompt() -> None:
    parsed = parse_infotext("a cat\nSteps: 20, Seed: 1")
    assert parsed == {"prompt": "a cat\nSteps: 20, Seed: 1", "negative_prompt": ""}


def test_a1111_docstring_example() -> None:
    parsed = parse_infotext(A1111_DOCSTRING)
    assert parsed["prompt"].startswith("girl with an artist's beret")
    assert parsed["negative_prompt"].endswith("messy drawing")
    assert parsed["Model hash"] == "45dee52b"
    params = params_from_infotext(A1111_DOCSTRING)
    assert (params.sampler, params.steps, params.guidance_scale, params.seed) == (Sampler.EULER_A, 20, 7.0,
                                                                                  965400086)
    assert (params.width, params.height) == (512, 512)


def test_a1111_multiline_prompt_with_hires() -> None:
    parsed = parse_infotext(A1111_MULTILINE)
    assert parsed["prompt"] == ("(colorful:1.3),\ndreamlike fantasy landscape where everything is a shade of "
                                "pink,\n<lora:NAI-cutesexyrobutts:1>")
    assert parsed["negative_prompt"] == "(worst quality:1.4), (low quality:1.4) , (monochrome:1.1)"
    assert parsed["Hires upscale"] == "2"
    assert parsed["Hires upscaler"] == "Latent"
    assert parsed["ENSD"] == "31337"
    params = params_from_infotext(A1111_MULTILINE)
    assert params.sampler is Sampler.DPMPP_2M_KARRAS
    assert (params.steps, params.guidance_scale, params.seed) == (40, 12.0, 2416682767)
    assert (params.width, params.height) == (640, 512)
    # A1111's txt2img writes the hires pass's strength as "Denoising strength"
    assert params.hires is not None and (params.hires.scale, params.hires.strength) == (2.0, 0.55)


def test_a1111_quoted_hashes_and_schedule_type() -> None:
    parsed = parse_infotext(A1111_V193)
    assert parsed["Lora hashes"] == "fubuki: ce30cae7c555, space_hopper: f4112c058273"
    assert parsed["Hires upscaler"] == "R-ESRGAN 4x+ Anime6B"
    assert parsed["Schedule type"] == "Karras"
    assert parsed["Version"] == "v1.9.3"
    assert parsed["negative_prompt"] == "bad fingers"
    # keypaint has no "DPM++ 2M SDE": the error names the field instead of silently picking another sampler
    with pytest.raises(InvalidParams) as err:
        params_from_infotext(A1111_V193)
    assert err.value.field == "sampler"
    assert params_from_infotext(A1111_V193, sampler=Sampler.DPMPP_SDE_KARRAS).seed == 2245042501


def test_a1111_without_seed_and_two_quoted_lists() -> None:
    parsed = parse_infotext(A1111_V151)
    assert parsed["TI hashes"] == "EasyNegative: c74b4e810b03, ng_deepnegative_v1_75t: 54e7e4826d53"
    assert parsed["Lora hashes"] == "zyd232_InkStyle_v1_0: 96718d4b1924, jinx: faecb6cfeccd"
    params = params_from_infotext(A1111_V151)
    assert params.seed == -1  # not written: keypaint draws one
    assert (params.width, params.height, params.guidance_scale) == (960, 540, 5.0)


def test_a1111_lcm_automatic_schedule() -> None:
    parsed = parse_infotext(A1111_V194)
    assert parsed["negative_prompt"] == "MajicNegative_V2,badhandv4,"
    assert parsed["Downcast alphas_cumprod"] == "True"
    params = params_from_infotext(A1111_V194)
    assert (params.sampler, params.steps, params.guidance_scale) == (Sampler.LCM, 6, 1.5)


def test_escaped_quotes_inside_quoted_values() -> None:
    text = 'cat\nSteps: 5, Sampler: Euler, CFG scale: 3, Model: "my \\"best\\", model", Seed: 9'
    parsed = parse_infotext(text)
    assert parsed["Model"] == 'my "best", model'
    assert parsed["Seed"] == "9"


def test_quote_and_unquote() -> None:
    assert quote("Latent") == "Latent"
    assert quote("a, b") == '"a, b"'
    assert unquote(quote('x: "y"\nz')) == 'x: "y"\nz'
    assert unquote('"not json') == '"not json'
    assert unquote('"') == '"'


@pytest.mark.parametrize(("line", "field"), [
    ("Steps: many", "steps"),
    ("Steps: 2.5", "steps"),
    ("CFG scale: high", "guidance_scale"),
    ("CFG scale: nan", "guidance_scale"),
    ("Seed: 0x10", "seed"),
    ("Size: 512", "size"),
    ("Sampler: Nonexistent", "sampler"),
    ("Denoising strength: lots", "strength"),
])
def test_bad_values_name_the_field(line: str, field: str) -> None:
    text = f"cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64, {line}"
    with pytest.raises(InvalidParams) as err:
        params_from_infotext(text)
    assert err.value.field == field


def test_overrides_win_and_unknown_overrides_fail() -> None:
    params = params_from_infotext(A1111_DOCSTRING, seed=5, steps=2)
    assert (params.seed, params.steps) == (5, 2)
    with pytest.raises(InvalidParams) as err:
        params_from_infotext(A1111_DOCSTRING, cfg=3)
    assert err.value.field == "cfg"


def test_extra_fields_must_not_break_the_line() -> None:
    params = GenerationParams(prompt="cat")
    with pytest.raises(ValueError, match="field name"):
        build_infotext(params, seed=1, width=64, height=64, model_name=None, model_hash=None,
                       extra={"Bad: key": 1})
    with pytest.raises(ValueError, match="written by keypaint"):
        build_infotext(params, seed=1, width=64, height=64, model_name=None, model_hash=None,
                       extra={"Seed": 2})
