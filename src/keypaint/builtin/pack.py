"""Put trained weights where keypaint ships them: `python -m keypaint.builtin.pack VAE_RUN UNET_RUN [DEST]`.

Copies RUN/vae, RUN/unet and RUN/scheduler (fp16 safetensors shards + configs, as the trainers write
them) into `keypaint/builtin/weights/`, checks the size budget (U-Net + VAE <= 35 MB in fp16, each file
<= 15 MB) and stores U-Net and VAE compactly. The other commands:

- `compact FOLDER ...`: a folder of plain weights made compact (`keypaint.models.compact`): the scorer's;
- `vocabulary DATA/train [DEST]`: the keyword vocabulary (each trained label and its CLDR tags; icon names
  and categories too, from `keypaint data icons`; `keypaint.keywords.vocabulary`);
- `meaning [DEST]`: the labels' sentence embeddings (`keypaint.keywords.meaning`);
- `sketch RUN [DEST]`: the sketch control `keypaint train controlnet` trained on the shipped U-Net
  (RUN/adapter or RUN/controlnet: config + compact weights) as `control/keypaint-sketch`, at most 4 MB;
- `lcm LCM_RUN [DEST]`: the LCM-LoRA `keypaint train lcm` distilled from the shipped U-Net, as the built-in
  LoRA `keypaint-lcm` (`--lcm`: 4 steps), its header rewritten in the form `keypaint finetune` writes, so
  the Painter checks its base like any fine-tuned LoRA.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from keypaint.builtin import VOCABULARY, WEIGHTS_DIR
from keypaint.data.folder import load_folder
from keypaint.errors import ModelError
from keypaint.keywords.meaning import FILENAME as MEANING
from keypaint.keywords.meaning import MeaningIndex
from keypaint.keywords.vocabulary import Vocabulary

LCM_NAME = "keypaint-lcm"
MAX_SKETCH = 4_000_000  # bytes of the sketch control's compact weights
MAX_TOTAL = 35_000_000  # bytes of U-Net + VAE weights
MAX_FILE = 15_000_000  # bytes per shard


def pack_weights(vae_run: Path, unet_run: Path, dest: Path = WEIGHTS_DIR) -> int:
    """Copy the three parts into `dest`, U-Net and VAE made compact; returns their size in bytes."""
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
    return sum(compact_part(dest / name) for name in ("vae", "unet"))


def compact_part(folder: Path) -> int:
    """Replace the plain safetensors files in `folder` by one compact file (int8 blocks, `models.compact`).

    The compact file's header keeps the hash of the plain files (`source_sha256`), so LoRAs trained on them
    still fit. Returns the compact file's size in bytes.
    """
    from safetensors.torch import load_file

    from keypaint.builtin import part_sha256
    from keypaint.models.compact import FILENAME as COMPACT
    from keypaint.models.compact import SOURCE_KEY, save_compact

    plain = sorted(f for f in folder.glob("*.safetensors") if f.name != COMPACT)
    if not plain:
        raise ModelError(f"{folder}: no plain .safetensors files to make compact")
    source = part_sha256(folder)
    state = {}
    for f in plain:
        state.update(load_file(str(f)))
    size = save_compact(state, folder / COMPACT, {SOURCE_KEY: source})
    for f in [*plain, *folder.glob("*.safetensors.index.json")]:
        f.unlink()
    return size


def pack_vocabulary(train: Path, dest: Path = WEIGHTS_DIR) -> Vocabulary:
    """Write `dest/keywords.json`: the labels of the training folder's records with their tags.

    Emoji records bring their CLDR label and tags; icon records (`kind` "icon", from `keypaint data
    icons`) their name words and categories. Where an icon is named like an emoji, the emoji's tags win.
    """
    records = load_folder(train, check_images=False)
    pairs: dict[bool, list[tuple[str, list[str]]]] = {False: [], True: []}
    for r in records:
        label, tags = r.fields.get("label"), list(r.fields.get("tags") or [])
        if isinstance(label, str):
            pairs[r.fields.get("kind") == "icon"].append((label, tags))
    if not pairs[False] and not pairs[True]:
        raise ModelError(f"{train}: no record has a 'label' field (an emoji data folder's train/ has)")
    vocabulary = Vocabulary.from_pairs(sorted(pairs[False]) + sorted(pairs[True]), vocabulary_note(train))
    vocabulary.save(dest / VOCABULARY)
    return vocabulary


def vocabulary_note(train: Path) -> str:
    """Where the words come from, as the data folder's sources.json records it."""
    try:
        sources = json.loads((train.parent / "sources.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "the training pictures' labels and tags"
    parts = []
    base = sources.get("emojibase") if isinstance(sources, dict) else None
    if isinstance(base, dict) and {"package", "version", "license"} <= base.keys():
        spdx = base["license"].get("spdx", "?") if isinstance(base["license"], dict) else "?"
        parts.append(f"CLDR labels and tags of {base['package']}@{base['version']} ({spdx})")
    icon_sets = sources.get("icon_sets") if isinstance(sources, dict) else None
    if isinstance(icon_sets, list) and icon_sets:
        parts.append(f"icon names and categories of {len(icon_sets)} iconify sets")
    return " and ".join(parts) or "the training pictures' labels and tags"


def pack_meaning(dest: Path = WEIGHTS_DIR) -> MeaningIndex:
    """Write `dest/meaning.safetensors`: every label of `dest/keywords.json` embedded by the text encoder."""
    from keypaint.builtin.text_encoder import load_text_encoder
    from keypaint.keywords.meaning import sentence_embeddings

    vocabulary = Vocabulary.beside(dest)
    if vocabulary is None:
        raise ModelError(f"{dest}: no {VOCABULARY}; pack the vocabulary first")
    tokenizer, encoder = load_text_encoder()
    labels = sorted(vocabulary.related)
    index = MeaningIndex.build(labels, labels, lambda texts: sentence_embeddings(tokenizer, encoder, texts))
    index.save(dest / MEANING)
    return index


def pack_lcm(run: Path, dest: Path = WEIGHTS_DIR) -> Path:
    """Copy RUN/lcm_lora.safetensors to DEST/loras/keypaint-lcm.safetensors with keypaint's metadata."""
    from safetensors.numpy import load_file, save_file

    from keypaint.builtin import NAME, unet_hashes
    from keypaint.models.adapter_format import BASE_VERSION, FinetuneInfo
    from keypaint.models.checkpoint_files import read_safetensors_header
    from keypaint.models.loaded import ModelKind

    source = run / "lcm_lora.safetensors"
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    shipped = unet_hashes(dest)
    base = str(report.get("base_unet_sha256"))
    if base not in shipped:
        raise ModelError(f"{source} was distilled from U-Net {base[:10]}, but {dest} ships "
                         f"{min(shipped)[:10]}: distill it again from the shipped U-Net")
    if source.stat().st_size > MAX_FILE:
        raise ModelError(f"{source} is over {MAX_FILE / 1e6:.0f} MB; distill with a lower --rank")
    settings = {key: report[key] for key in ("rank", "guidance_range", "num_ddim_timesteps", "inference",
                                              "batch_per_process", "pictures") if key in report}
    info = FinetuneInfo(
        method="lcm", token="", base_model=NAME, base_sha256=base, base_kind=ModelKind.KEYPAINT.value,
        steps=int(report["steps"]), settings=settings, seconds=round(float(report["minutes"]) * 60, 1),
        device=str(report.get("device", "")),
    )
    metadata = dict(read_safetensors_header(source).metadata)
    metadata.update(info.to_header())
    metadata["ss_base_model_version"] = BASE_VERSION[ModelKind.KEYPAINT]
    target = dest / "loras" / f"{LCM_NAME}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(load_file(str(source)), str(target), metadata=metadata)
    return target


def pack_sketch(run: Path, dest: Path = WEIGHTS_DIR) -> Path:
    """Copy RUN's trained control (config + compact weights) to DEST/control/keypaint-sketch."""
    from keypaint.builtin import SKETCH, unet_hashes
    from keypaint.models.compact import FILENAME as COMPACT

    kinds = [run / kind for kind in ("adapter", "controlnet") if (run / kind / COMPACT).is_file()]
    source = kinds[0] if kinds else None
    if source is None:
        raise ModelError(f"{run}: no trained control (adapter/ or controlnet/ with {COMPACT})")
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    base = str(report.get("base_unet_sha256", ""))
    if base and base not in unet_hashes(dest):
        raise ModelError(f"{run} was trained on U-Net {base[:10]}, not the one {dest} ships: train it again")
    if (source / COMPACT).stat().st_size > MAX_SKETCH:
        raise ModelError(f"{source / COMPACT} is over {MAX_SKETCH / 1e6:.0f} MB; train a smaller control")
    target = dest / "control" / SKETCH
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", COMPACT):
        shutil.copyfile(source / name, target / name)
    return target


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) in (2, 3) and args[0] == "lcm":
        print(f"wrote {pack_lcm(Path(args[1]), Path(args[2]) if len(args) == 3 else WEIGHTS_DIR)}")
    elif len(args) in (2, 3) and args[0] == "sketch":
        print(f"wrote {pack_sketch(Path(args[1]), Path(args[2]) if len(args) == 3 else WEIGHTS_DIR)}")
    elif len(args) >= 2 and args[0] == "compact":
        for folder in map(Path, args[1:]):
            print(f"{folder}: {compact_part(folder) / 1e6:.1f} MB compact")
    elif len(args) in (1, 2) and args[0] == "meaning":
        dest = Path(args[1]) if len(args) == 2 else WEIGHTS_DIR
        print(f"wrote {len(pack_meaning(dest).entries)} label embeddings into {dest / MEANING}")
    elif len(args) in (2, 3) and args[0] == "vocabulary":
        dest = Path(args[2]) if len(args) == 3 else WEIGHTS_DIR
        print(f"wrote {len(pack_vocabulary(Path(args[1]), dest))} keywords into {dest / VOCABULARY}")
    elif len(args) in (2, 3):
        dest = Path(args[2]) if len(args) == 3 else WEIGHTS_DIR
        size = pack_weights(Path(args[0]), Path(args[1]), dest)
        print(f"packed {size / 1e6:.1f} MB of weights into {dest}")
    else:
        sys.exit("usage: python -m keypaint.builtin.pack VAE_RUN UNET_RUN [DEST]\n"
                 "       python -m keypaint.builtin.pack vocabulary DATA/train [DEST]\n"
                 "       python -m keypaint.builtin.pack meaning [DEST]\n"
                 "       python -m keypaint.builtin.pack compact FOLDER [FOLDER ...]\n"
                 "       python -m keypaint.builtin.pack lcm LCM_RUN [DEST]\n"
                 "       python -m keypaint.builtin.pack sketch CONTROL_RUN [DEST]")
