"""SD3 and Flux.1 files in every layout keypaint reads load back to the same weights, offline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from diffusers import FluxPipeline, StableDiffusion3Pipeline
from diffusers.quantizers.gguf.utils import dequantize_gguf_tensor

from keypaint.errors import ModelError
from keypaint.models.flow_files import ComponentFiles
from keypaint.models.loaded import ModelKind
from keypaint.models.loader import load_model
from keypaint.models.preflight import check_model
from keypaint.models.tiny_flow import tiny_flux_pipeline, tiny_sd3_pipeline

from .flow_saving import encoder_files, save, save_gguf, transformer_original, whole_checkpoint
from .ldm_layout import vae_to_ldm


@dataclass(frozen=True)
class Tiny:
    kind: ModelKind
    pipe: StableDiffusion3Pipeline | FluxPipeline
    folder: Path  # save_pretrained: the diffusers folder, and the config of the single files


@pytest.fixture(scope="module", params=[ModelKind.FLUX, ModelKind.SD3], ids=["flux", "sd3"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    kind = request.param
    pipe = tiny_flux_pipeline() if kind is ModelKind.FLUX else tiny_sd3_pipeline(dual_attention=True)
    folder = tmp_path_factory.mktemp(f"flow-{kind.value}") / "folder"
    pipe.save_pretrained(folder)
    return Tiny(kind, pipe, folder)


PARTS = {ModelKind.FLUX: ("transformer", "vae", "text_encoder", "text_encoder_2"),
         ModelKind.SD3: ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3")}


def assert_same(tiny: Tiny, pipe: object, atol: float = 0.0, rtol: float = 0.0) -> None:
    for part in PARTS[tiny.kind]:
        want, got = getattr(tiny.pipe, part).state_dict(), getattr(pipe, part).state_dict()
        assert want.keys() == got.keys(), part
        bad = [k for k in want if not torch.allclose(want[k], got[k].to(want[k].dtype), atol=atol, rtol=rtol)]
        assert not bad, (part, bad[:3])


def encoder_options(tiny: Tiny, root: Path) -> ComponentFiles:
    files = {name: save(sd, root / f"{name}.safetensors") for name, sd in encoder_files(tiny.pipe).items()}
    return ComponentFiles(clip_l=files["clip_l"], clip_g=files.get("clip_g"), t5=files["t5xxl"])


@pytest.mark.parametrize("comfy", [True, False], ids=["comfyui-prefix", "original-names"])
def test_whole_checkpoint_loads_the_same_weights(tiny: Tiny, tmp_path: Path, comfy: bool) -> None:
    path = save(whole_checkpoint(tiny.pipe, comfy_prefix=comfy), tmp_path / "whole.safetensors")

    detected = check_model(path, home=tmp_path).detected
    model = load_model(path, config_dir=tiny.folder, home=tmp_path)

    assert detected is not None and detected.kind is tiny.kind
    assert model.kind is tiny.kind and type(model.pipe) is type(tiny.pipe)
    assert model.sha256 is not None and model.name == "whole"
    assert_same(tiny, model.pipe)


def test_transformer_file_in_diffusers_names_with_encoders_by_option(tiny: Tiny, tmp_path: Path) -> None:
    path = save(dict(tiny.pipe.transformer.state_dict()), tmp_path / "models" / "transformer.safetensors")
    vae = save(vae_to_ldm(tiny.pipe.vae.state_dict(), tiny.pipe.vae.config), tmp_path / "ae.safetensors")

    model = load_model(path, config_dir=tiny.folder, home=tmp_path, vae=vae,
                       components=encoder_options(tiny, tmp_path / "encoders"))

    assert_same(tiny, model.pipe)


def test_transformer_file_finds_its_parts_beside_it(tiny: Tiny, tmp_path: Path) -> None:
    path = save(transformer_original(tiny.pipe), tmp_path / "flux1-dev.safetensors")
    encoder_options(tiny, tmp_path / "text_encoders")  # ComfyUI's folder names: clip_l, t5xxl ...
    save(vae_to_ldm(tiny.pipe.vae.state_dict(), tiny.pipe.vae.config), tmp_path / "vae" / "ae.safetensors")

    model = load_model(path, config_dir=tiny.folder, home=tmp_path)

    assert_same(tiny, model.pipe)


def test_fp8_weights_are_upcast(tiny: Tiny, tmp_path: Path) -> None:
    path = save(whole_checkpoint(tiny.pipe), tmp_path / "whole-fp8.safetensors", fp8=True)

    detected = check_model(path, home=tmp_path).detected
    model = load_model(path, config_dir=tiny.folder, home=tmp_path)

    assert detected is not None and detected.fp8
    assert model.pipe.transformer.dtype == torch.float32
    assert_same(tiny, model.pipe, atol=0.01, rtol=0.07)  # e4m3 keeps 3 mantissa bits: 1/16 relative


def test_gguf_transformer_loads_quantised(tiny: Tiny, tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    path = save_gguf(tiny.pipe, tmp_path / "transformer-Q8_0.gguf")
    vae = save(vae_to_ldm(tiny.pipe.vae.state_dict(), tiny.pipe.vae.config), tmp_path / "ae.safetensors")

    model = load_model(path, config_dir=tiny.folder, home=tmp_path, vae=vae,
                       components=encoder_options(tiny, tmp_path / "encoders"))

    assert model.kind is tiny.kind
    params = dict(model.pipe.transformer.named_parameters())
    quantised = [n for n, p in params.items() if type(p).__name__ == "GGUFParameter"]
    assert quantised  # the weights stay quantised in memory, dequantised layer by layer
    want = tiny.pipe.transformer.state_dict()
    for name in quantised:
        weight = dequantize_gguf_tensor(params[name]).float()
        assert torch.allclose(weight, want[name], atol=0.02), name  # Q8_0: 8 bits per 32-block


def test_diffusers_folder_loads(tiny: Tiny, tmp_path: Path) -> None:
    model = load_model(tiny.folder, home=tmp_path)

    assert model.kind is tiny.kind and type(model.pipe) is type(tiny.pipe)
    assert model.sha256 is not None
    assert_same(tiny, model.pipe)


def test_missing_parts_are_named_with_their_options(tiny: Tiny, tmp_path: Path) -> None:
    path = save(transformer_original(tiny.pipe), tmp_path / "alone.safetensors")

    with pytest.raises(ModelError) as err:
        check_model(path, home=tmp_path)  # headers only: before anything is loaded

    text = str(err.value)
    assert "--clip-l FILE" in text and "--t5 FILE" in text and "--vae FILE" in text
    assert ("--clip-g FILE" in text) is (tiny.kind is ModelKind.SD3)


def test_a_wrong_encoder_file_is_refused_before_loading(tiny: Tiny, tmp_path: Path) -> None:
    path = save(whole_checkpoint(tiny.pipe), tmp_path / "whole.safetensors")
    clip = save(encoder_files(tiny.pipe)["clip_l"], tmp_path / "clip_l.safetensors")

    with pytest.raises(ModelError, match="holds a CLIP text encoder, not the T5-XXL that --t5 takes"):
        load_model(path, config_dir=tiny.folder, home=tmp_path, components=ComponentFiles(t5=clip))


def test_encoder_options_are_refused_for_u_net_models(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="--clip-l, --clip-g and --t5 are for SD3 and Flux"):
        load_model(None, home=tmp_path, components=ComponentFiles(t5=tmp_path / "t5.safetensors"))


def test_a_file_with_a_u_net_and_a_flux_transformer_is_refused(tmp_path: Path) -> None:
    tensors = {"model.diffusion_model.double_blocks.0.img_attn.qkv.weight": torch.zeros(6, 2),
               "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3)}
    path = save(tensors, tmp_path / "mixed.safetensors")

    with pytest.raises(ModelError, match="both a U-Net and a flow transformer"):
        check_model(path, home=tmp_path)


def test_a_gguf_without_a_flow_transformer_is_refused(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "llm.gguf"
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_tensor("blk.0.attn_q.weight", torch.zeros(4, 4).numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    with pytest.raises(ModelError, match="no SD3 or Flux transformer in this GGUF file"):
        check_model(path, home=tmp_path)


def test_sd3_runs_without_t5_when_asked(tmp_path: Path) -> None:
    from keypaint.core.painter import Painter
    from keypaint.core.params import GenerationParams

    pipe = tiny_sd3_pipeline()
    pipe.save_pretrained(tmp_path / "folder")
    whole = {k: v for k, v in whole_checkpoint(pipe).items() if not k.startswith("text_encoders.t5xxl.")}
    path = save(whole, tmp_path / "sd3-no-t5.safetensors")
    with pytest.raises(ModelError, match="--t5 FILE"):
        load_model(path, config_dir=tmp_path / "folder", home=tmp_path)

    model = load_model(path, config_dir=tmp_path / "folder", home=tmp_path,
                       components=ComponentFiles(no_t5=True))
    params = GenerationParams(prompt="red apple", steps=2, width=32, height=32, seed=1)
    [picture] = Painter(model).generate(params)

    assert model.pipe.text_encoder_3 is None and picture.image.size == (32, 32)
    with pytest.raises(ModelError, match="flux models cannot run without their T5"):
        flux = save(whole_checkpoint(tiny_flux_pipeline()), tmp_path / "flux.safetensors")
        load_model(flux, home=tmp_path, components=ComponentFiles(no_t5=True))


def test_scaled_fp8_weights_are_multiplied_out() -> None:
    from keypaint.models.flow_loader import upcast

    weight = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    state = {"a.weight": weight.to(torch.float8_e4m3fn), "a.scale_weight": torch.tensor(3.0),
             "a.bias": torch.ones(2), "scaled_fp8": torch.zeros(0)}

    out = upcast(state, torch.float32)

    assert set(out) == {"a.weight", "a.bias"}
    assert torch.equal(out["a.weight"], weight * 3) and out["a.weight"].dtype == torch.float32
