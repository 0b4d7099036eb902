"""Reading checkpoint files without trusting them.

A `.safetensors` file is an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
shape and byte range, then the raw bytes. We check all of that against the file's real size before any
tensor is read, so a truncated or hostile file fails with a one-line error instead of a huge allocation.

Pickles (`.ckpt`, `.pt`, `.pth`, `.bin`) can run code when unpickled. They are refused unless the caller
opts in, and even then are read only with `torch.load(..., weights_only=True)` and rewritten as safetensors,
so nothing downstream (diffusers included) ever unpickles them.
"""

from __future__ import annotations

import json
import math
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from keypaint.errors import ModelError

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # real SD headers are well under 1 MB

# Bytes per element of each safetensors dtype.
_DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the header describes it (nothing read from the data section)."""

    dtype: str
    shape: tuple[int, ...]


@dataclass
class SafetensorsHeader:
    """A validated header: tensor names, shapes and dtypes, plus the free-form `__metadata__` strings."""

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)

    def shape(self, key: str) -> tuple[int, ...] | None:
        info = self.tensors.get(key)
        return info.shape if info else None


def is_pickle(path: Path) -> bool:
    return path.suffix.lower() in PICKLE_SUFFIXES


def _bad(path: Path, why: str) -> ModelError:
    return ModelError(f"{path.name}: not a valid .safetensors file ({why})")


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    """Validate `path`'s header against the file size and return it; reads only the header bytes."""
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    file_size = path.stat().st_size
    if file_size < 8:
        raise _bad(path, f"only {file_size} bytes long")
    with path.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > MAX_HEADER_BYTES:
            raise _bad(path, f"header claims {header_len} bytes, more than the {MAX_HEADER_BYTES} allowed")
        if header_len > file_size - 8:
            raise _bad(path, f"header claims {header_len} bytes but only {file_size - 8} follow the length")
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"header is not JSON: {e.__class__.__name__}") from None
    if not isinstance(header, dict):
        raise _bad(path, "header is not a JSON object")

    data_size = file_size - 8 - header_len
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise _bad(path, "__metadata__ is not an object")
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        tensors[name] = _check_entry(path, name, entry, data_size)
    return SafetensorsHeader(tensors=tensors, metadata={str(k): str(v) for k, v in metadata.items()})


def _check_entry(path: Path, name: str, entry: object, data_size: int) -> TensorInfo:
    if not isinstance(entry, dict):
        raise _bad(path, f"entry for {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _DTYPE_SIZES:
        raise _bad(path, f"tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise _bad(path, f"tensor {name!r} has a malformed shape")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets) or not 0 <= offsets[0] <= offsets[1]):
        raise _bad(path, f"tensor {name!r} has malformed data offsets")
    if offsets[1] > data_size:
        raise _bad(path, f"tensor {name!r} ends at byte {offsets[1]} of a {data_size}-byte data section; "
                         "the file is truncated")
    if offsets[1] - offsets[0] != math.prod(shape) * _DTYPE_SIZES[dtype]:
        raise _bad(path, f"tensor {name!r} has {offsets[1] - offsets[0]} bytes, which does not fit its shape")
    return TensorInfo(dtype=dtype, shape=tuple(shape))


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a file that passed `read_safetensors_header`."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own error types; surface them as one line
        raise ModelError(f"{path.name}: cannot read tensors ({str(e).splitlines()[0]})") from None


# What a person at the command line can do about a refused pickle (the server words its own answer).
CLI_PICKLE_REMEDY = ("if you trust where it came from, read its weights only with --allow-pickle (keypaint "
                     "generate, serve, export and finetune take it), or convert it once: keypaint export "
                     "{name} FOLDER --allow-pickle")


class PickleRefused(ModelError):
    """A pickle met without permission to read it; `remedy` says how to give it ({name}: the file)."""

    def __init__(self, path: Path, what: str, remedy: str = CLI_PICKLE_REMEDY) -> None:
        self.path, self.what = path, what
        super().__init__(f"{what}, which can run code when loaded; {remedy.format(name=path.name)}")

    def reworded(self, remedy: str) -> PickleRefused:
        return PickleRefused(self.path, self.what, remedy)


def refuse_pickle(path: Path) -> PickleRefused:
    return PickleRefused(path, f"{path.name} is a pickle checkpoint")


def unpickling_refusal(error: BaseException) -> str:
    """Why `torch.load(weights_only=True)` refused a file, without PyTorch's advice to turn that off.

    Its message explains that `weights_only=False` "will likely succeed": for a file that carries code, the
    one thing never to do. Only the sentence naming what the file holds is kept.
    """
    lines = [line.strip() for line in str(error).splitlines()]
    for marker in ("WeightsUnpickler error:", "GLOBAL", "Unsupported"):  # PyTorch's wordings, 2.6 to 2.13
        for line in lines:
            if marker not in line:
                continue
            reason = line.split("WeightsUnpickler error:")[-1].strip()
            reason = reason.split(" Please ", 1)[0].split(" You can use ", 1)[0]  # later sentences: advice
            if reason and "weights_only" not in reason:
                return reason[:200].rstrip(" .")
    return "it holds objects other than tensors"


def load_pickle_weights(path: Path) -> tuple[dict[str, torch.Tensor], int | None]:
    """The tensors of a pickle checkpoint, read weights-only; also its `global_step` if it has one.

    `torch.load(weights_only=True)` refuses any object that is not a tensor or a plain container, so a
    pickle carrying code raises here before anything in it runs.
    """
    import torch

    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ModelError(f"{path.name}: this pickle holds more than weights, so keypaint will not read it "
                         f"({unpickling_refusal(e)})") from None
    except Exception as e:  # zip/EOF errors from a damaged file
        why = e.__class__.__name__
        raise ModelError(f"{path.name}: cannot read this pickle checkpoint ({why})") from None
    global_step = obj.get("global_step") if isinstance(obj, dict) else None
    while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ModelError(f"{path.name}: the pickle does not hold a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelError(f"{path.name}: the pickle holds no tensors")
    return tensors, global_step if isinstance(global_step, int) else None


def pickle_to_safetensors(path: Path, dest: Path) -> Path:
    """Rewrite the weights of pickle `path` as safetensors file `dest` (global_step kept in its metadata)."""
    import torch
    from safetensors.torch import save_file

    tensors, global_step = load_pickle_weights(path)
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        # safetensors refuses tensors that share memory; copies keep each one standalone.
        ptr = tensor.untyped_storage().data_ptr() if tensor.numel() else -1
        shared = ptr in seen
        seen.add(ptr)
        out[key] = tensor.clone(memory_format=torch.contiguous_format) if shared else tensor.contiguous()
    metadata = {"format": "pt", "keypaint.source": path.name}
    if global_step is not None:
        metadata["global_step"] = str(global_step)
    save_file(out, str(dest), metadata=metadata)
    return dest
