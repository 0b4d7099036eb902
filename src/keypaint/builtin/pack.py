"""Put trained weights where keypaint ships them: `python -m keypaint.builtin.pack VAE_RUN UNET_RUN [DEST]`.

Copies RUN/vae, RUN/unet and RUN/scheduler (fp16 safetensors shards + configs, as the trainers write
them) into `keypaint/builtin/weights/` and checks the size budget of the issue: U-Net + VAE <= 35 MB,
each file <= 15 MB.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from keypaint.builtin import WEIGHTS_DIR
from keypaint.errors import ModelError

MAX_TOTAL = 35_000_000  # bytes of U-Net + VAE weights
MAX_FILE = 15_000_000  # bytes per shard


def pack_weights(vae_run: Path, unet_run: Path, dest: Path = WEIGHTS_DIR) -> int:
    """Copy the three parts into `dest`; returns the weights' total size in bytes."""
    parts = {"vae": vae_run / "vae", "unet": unet_run / "unet", "scheduler": unet_run / "scheduler"}
    for name, folder in parts.items():
        if not folder.is_dir():
            raise ModelError(f"{folder}: missing {name} folder")
    weights = [f for name in ("vae", "unet") for f in parts[name].glob("*.safetensors")]
    total = sum(f.stat().st_size for f in weights)
    big = [f for f in weights if f.stat().st_size > MAX_FILE]
    if big:
        raise ModelError(f"{big[0]} is over {MAX_FILE / 1e6:.0f} MB; save with max_shard_size='15MB'")
    if total > MAX_TOTAL:
        raise ModelError(f"U-Net + VAE weights are {total / 1e6:.1f} MB, over {MAX_TOTAL / 1e6:.0f} MB")
    for name, folder in parts.items():
        target = dest / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for f in folder.iterdir():
            if f.is_file() and (f.suffix in (".json", ".safetensors")):
                shutil.copy2(f, target / f.name)
    return total


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m keypaint.builtin.pack VAE_RUN UNET_RUN [DEST]")
    dest = Path(sys.argv[3]) if len(sys.argv) == 4 else WEIGHTS_DIR
    size = pack_weights(Path(sys.argv[1]), Path(sys.argv[2]), dest)
    print(f"packed {size / 1e6:.1f} MB of weights into {dest}")
