"""Finding and checking LoRA and embedding files: prompt tags, names vs paths, foreign files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from keypaint.builtin import MODEL
from keypaint.core.adapters import find_file, find_lora, split_lora_tags
from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams, LoraRef
from keypaint.errors import InvalidParams, ModelError
from keypaint.finetune.lora import add_lora, lora_state, remove_lora
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_model


def test_lora_tags_come_out_of_the_prompt() -> None:
    text, loras = split_lora_tags("cat face, <lora:ink:0.8> <LORA:Other> red")
    assert text == "cat face,   red"  # removed as A1111 removes them; the encoder sees the rest
    assert loras == [LoraRef("ink", 0.8), LoraRef("Other", 1.0)]
    with pytest.raises(InvalidParams, match="the weight must be a number"):
        split_lora_tags("<lora:ink:strong>")


def test_names_are_looked_up_in_the_folder_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "loras"
    folder.mkdir()
    (folder / "ink.safetensors").write_bytes(b"x")
    assert find_file("ink", folder, "LoRA", allow_paths=False) == folder / "ink.safetensors"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret").write_bytes(b"x")  # a bare name never means a file in the working folder
    with pytest.raises(ModelError, match=r"unknown LoRA 'secret'; .* holds: ink"):
        find_file("secret", folder, "LoRA", allow_paths=True)
    with pytest.raises(ModelError, match="no folders, no suffix"):
        find_file("../loras/ink.safetensors", folder, "LoRA", allow_paths=False)
    assert (
        find_file(str(folder / "ink.safetensors"), folder, "LoRA", allow_paths=True).name == "ink.safetensors"
    )


def test_the_built_in_loras_are_found_by_name_unless_home_has_one(tmp_path: Path) -> None:
    shipped = find_lora("keypaint-lcm", tmp_path, allow_paths=False, shipped=MODEL.loras)
    assert shipped == MODEL.loras / "keypaint-lcm.safetensors" and shipped.is_file()
    own = tmp_path / "loras" / "keypaint-lcm.safetensors"
    own.parent.mkdir()
    own.write_bytes(b"x")
    assert find_lora("keypaint-lcm", tmp_path, allow_paths=False, shipped=MODEL.loras) == own
    with pytest.raises(ModelError, match="unknown LoRA 'nope'"):
        find_lora("nope", tmp_path, allow_paths=False)


def peft_lora(path: Path, metadata: dict[str, str] | None = None) -> None:
    """A foreign LoRA in diffusers' own peft layout (unet.<module>.lora_A.weight), no keypaint metadata."""
    model = tiny_model(ModelKind.SD1)
    add_lora(model.pipe.unet, 4, seed=0)
    state = {
        f"unet.{k}": v.normal_(0, 0.1) if "lora_B" in k else v for k, v in lora_state(model.pipe.unet).items()
    }
    remove_lora(model.pipe.unet)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)


def test_foreign_loras_load_and_a_wrong_family_is_named(tmp_path: Path) -> None:
    peft_lora(tmp_path / "loras" / "peft.safetensors")
    peft_lora(tmp_path / "loras" / "xl.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"})
    painter = Painter(tiny_model(ModelKind.SD1), home=tmp_path)
    [plain] = painter.generate(GenerationParams(prompt="cat", seed=1, steps=2))
    [styled] = painter.generate(GenerationParams(prompt="cat <lora:peft:1>", seed=1, steps=2))
    assert styled.extra["Lora weights"] == "peft: 1" and plain.image.tobytes() != styled.image.tobytes()
    with pytest.raises(
        ModelError, match=r"LoRA xl.safetensors was made for sdxl models, but the model loaded is"
    ):
        painter.generate(GenerationParams(prompt="cat <lora:xl:1>", steps=2))
    with pytest.raises(ModelError, match="does not fit"):  # an SD 1.x LoRA on an SDXL model: shapes differ
        Painter(tiny_model(ModelKind.SDXL), home=tmp_path).generate(
            GenerationParams(prompt="cat <lora:peft:1>", steps=2)
        )


def test_embedding_of_the_wrong_width_is_refused(tmp_path: Path) -> None:
    (tmp_path / "embeddings").mkdir()
    save_file({"emb_params": torch.zeros(2, 768)}, str(tmp_path / "embeddings" / "wide.safetensors"))
    painter = Painter(tiny_model(ModelKind.SD1), home=tmp_path)
    with pytest.raises(
        ModelError, match=r"wide.safetensors has vectors of shape \(2, 768\), but .* \(n, 32\)"
    ):
        painter.generate(GenerationParams(prompt="a wide cat", steps=2))
