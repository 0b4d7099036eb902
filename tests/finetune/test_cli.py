"""`keypaint finetune` and `generate --lora/--embedding` through the real CLI: output and bad input."""

from __future__ import annotations

from pathlib import Path

import typer
from PIL import Image
from typer.testing import CliRunner

from keypaint.cli.app import app as main_app
from keypaint.cli.finetune_cmd import finetune_command
from keypaint.finetune import FinetuneInfo
from keypaint.models.checkpoint_files import read_safetensors_header
from keypaint.outputs.metadata import read_metadata

runner = CliRunner()
finetune_app = typer.Typer()
finetune_app.command()(finetune_command)
FAST = ["--base", "tiny", "--steps", "2", "--batch-size", "2", "--cpu", "--lr", "0.01"]


def finetune(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(finetune_app, [str(a) for a in args])
    return result.exit_code, result.output


def generate(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(main_app, ["generate", *map(str, args)])
    return result.exit_code, result.output


def test_finetune_then_generate_with_lora_and_embedding(home: Path, pictures: Path, tmp_path: Path) -> None:
    code, output = finetune(pictures, "--token", "zqstyle", *FAST)
    assert code == 0, output
    lora = home / "loras" / "zqstyle.safetensors"
    assert str(lora) in output and "--lora" in output and lora.is_file()
    assert "--method auto chose lora" in output  # the default; tiny is a checkpoint, not the built-in model
    info = FinetuneInfo.from_header(read_safetensors_header(lora).metadata)
    assert info is not None and info.method == "lora"  # the method that ran, not "auto"
    code, output = finetune(pictures, "--token", "zqword", "--method", "textual-inversion", *FAST)
    assert code == 0, output
    embedding = home / "embeddings" / "zqword.safetensors"

    code, output = generate(
        "red disc, zqword",
        "--model",
        "tiny",
        "--steps",
        "2",
        "--seed",
        "1",
        "--lora",
        f"{lora}:0.8",
        "--embedding",
        embedding,
        "--out",
        tmp_path / "out",
    )
    assert code == 0, output
    [saved] = list((tmp_path / "out").rglob("*.png"))
    infotext = read_metadata(saved).infotext or ""
    assert 'Lora hashes: "zqstyle: ' in infotext and 'Lora weights: "zqstyle: 0.8"' in infotext
    assert 'TI hashes: "zqword: ' in infotext


def test_bad_pictures_fail_before_any_model_loads(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    Image.new("RGB", (32, 32), "white").save(folder / "a.png")
    code, output = finetune(folder, "--token", "zqstyle", *FAST)
    assert code == 2 and "has 1 picture(s); fine-tuning needs at least 2" in output

    (folder / "b.png").write_bytes(b"not a png at all")
    code, output = finetune(folder, "--token", "zqstyle", *FAST)
    assert code == 2 and "b.png: unreadable image" in output

    (folder / "b.png").unlink()
    Image.new("RGB", (40, 24), "white").save(folder / "c.png")
    code, output = finetune(folder, "--token", "zqstyle", *FAST)  # mixed sizes: resized, and said so
    assert code == 0, output
    said = " ".join(output.split())
    assert "mixed sizes: 32x32 (1), 40x24 (1); each is centre-cropped square and resized to 64x64" in said


def test_bad_options_fail_with_one_line(home: Path, pictures: Path) -> None:
    cases = [
        (["--token", "a b"], "--token 'a b'"),
        (["--token", "zq", "--method", "hypernetwork"], "--method must be one of auto, lora, dora, loha"),
        (["--token", "zqq", "--method", "dreambooth"], "needs --class-prompt"),
        (["--token", "zqq", "--rank", "0"], "--rank must be a whole number within [1, 256]"),
        (["--token", "zqq", "--out", "x.ckpt"], "must end in .safetensors"),
        (
            ["--token", "zqq", "--max-timestep", "400", "--min-timestep", "500"],
            "must be below --max-timestep 400",
        ),
        (
            ["--token", "zqq", "--targets", "everything"],
            "--targets must be all, attention or cross-attention",
        ),
        (["--token", "zqq", "--base", "no-such-model"], "unknown model 'no-such-model'"),
        (["--token", "zqq", "--method", "full", "--rank", "4"], "--rank is for the LoRA methods; --method"),
        (["--token", "zqq", "--vectors", "2"], "--vectors and --init-word are for textual-inversion and"),
        (["--token", "zqq", "--method", "dora", "--init-word", "dog"], "are for textual-inversion and"),
        (["--token", "zqq", "--method", "lokr", "--embedding-lr", "0.01"], "--embedding-lr is for pivotal"),
        (["--token", "zqq", "--method", "pivotal", "--embedding-lr", "2"], "--embedding-lr must be within"),
        (["--token", "zqq", "--method", "b-lora", "--targets", "all"], "must be style, content or both"),
        (["--token", "zqq", "--method", "full", "--targets", "all"], "--targets is for the LoRA methods"),
        (["--token", "zqq", "--method", "full", "--out", "m.safetensors"], "full writes a model folder"),
        (["--token", "zqq", "--method", "textual-inversion", "--class-dir", "c"], "not textual-inversion"),
    ]
    for args, message in cases:
        code, output = finetune(pictures, *args, "--steps", "1", "--cpu")
        assert code == 2 and message in output, (args, output)


def test_generate_refuses_bad_loras_naming_what_is_wrong(home: Path, pictures: Path, tmp_path: Path) -> None:
    code, output = finetune(pictures, "--token", "zqstyle", *FAST)
    assert code == 0, output
    lora = home / "loras" / "zqstyle.safetensors"
    cases = [
        (["--lora", f"{lora}:2.5"], "weight 2.5 is outside [-2, 2]"),
        (["--lora", "zqstyle:-3"], "weight -3 is outside [-2, 2]"),
        (["--lora", "nothere:1"], "unknown LoRA 'nothere'"),
        (["--lora", str(tmp_path / "missing.safetensors")], "LoRA file not found"),
        (["--embedding", str(lora)], "not a textual-inversion embedding"),
        (["--lora", "zqstyle"], "was trained on tiny ("),  # on tiny-other, below
    ]
    for args, message in cases:
        model = "tiny-other" if message.startswith("was trained") else "tiny"
        code, output = generate("red disc", "--model", model, "--steps", "2", *args, "--out", tmp_path / "o")
        assert code == 2 and message in " ".join(output.split()), (args, output)
    assert not list((tmp_path / "o").rglob("*.png"))  # nothing painted
