"""`keypaint generate` with a Flux.1 model: --distilled-cfg and --shift recorded as Forge writes them and kept
by --from; the separate-encoder options refused with one line for a model that has none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from keypaint.cli.app import app
from keypaint.outputs.metadata import read_metadata

runner = CliRunner()


@pytest.fixture(scope="module")
def flux_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from keypaint.models.tiny_flow import tiny_flux_pipeline

    folder = tmp_path_factory.mktemp("flow-models") / "tiny-flux"
    tiny_flux_pipeline().save_pretrained(folder)
    return folder


@pytest.fixture
def flux_home(home: Path, flux_folder: Path) -> Path:
    (home / "models" / "tiny-flux").symlink_to(flux_folder, target_is_directory=True)
    return home


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_flux_settings_are_recorded_and_remade_by_from(flux_home: Path, tmp_path: Path) -> None:
    code, output = run("generate", "red apple", "--model", "tiny-flux", "--steps", "2", "--size", "32x32",
                       "--seed", "4", "--distilled-cfg", "5", "--shift", "2", "--out", str(tmp_path / "a"))
    assert code == 0, output
    [first] = [Path(w.split()[0]) for w in output.splitlines() if w.split() and w.split()[0].endswith(".png")]
    infotext = read_metadata(first).infotext
    assert infotext is not None
    assert "Sampler: Euler" in infotext and "Distilled CFG Scale: 5, Shift: 2" in infotext

    code, output = run("generate", "--from", str(first), "--model", "tiny-flux", "--out", str(tmp_path / "b"))
    assert code == 0, output
    [again] = [Path(w.split()[0]) for w in output.splitlines() if w.split() and w.split()[0].endswith(".png")]
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))


def test_flow_options_on_a_u_net_model_exit_2(flux_home: Path, tmp_path: Path) -> None:
    code, output = run("generate", "red apple", "--model", "tiny", "--steps", "2", "--shift", "3",
                       "--out", str(tmp_path))
    assert code == 2
    assert "shift and distilled guidance are for SD3 and Flux models" in output
    code, output = run("generate", "red apple", "--model", "tiny", "--t5", str(tmp_path / "t5.safetensors"),
                       "--out", str(tmp_path))
    assert code == 2
    assert "--clip-l, --clip-g and --t5 are for SD3 and Flux single files" in output
