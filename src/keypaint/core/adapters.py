"""LoRAs and textual-inversion embeddings on the Painter's model, chosen per request.

- A LoRA (the kohya layout `keypaint finetune` writes and A1111/ComfyUI use, or diffusers' peft layout) is
  loaded once with diffusers' `load_lora_weights` as a named peft adapter; each request weights the ones
  it names with `set_adapters` and switches the others off (and those at weight 0). DoRA, LoHa and LoKr
  files become peft adapters the same way (`adapter_layouts`), and the words bundled in a LoRA file
  (A1111's `bundle_emb.*`, pivotal tuning) are used while the LoRA is and its word is in the prompt.
- `<lora:NAME:WEIGHT>` in a prompt (A1111's syntax) names `<home>/loras/NAME.safetensors`; the tag is taken
  out of the text the encoder sees, as A1111 does.
- An embedding (A1111 layout: `emb_params`, or `clip_l` + `clip_g` for SDXL) stands for its trigger word
  (see `keypaint.prompts.embeddings`); a file in `<home>/embeddings` is used whenever its name appears in
  the prompt, as in A1111.
- A file made by `keypaint finetune` names its base model's hash: on another model it is refused with
  both models named, before any denoising. Foreign files are checked by family and by shape.
"""

from __future__ import annotations

import contextlib
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from keypaint.core.adapter_layouts import LORA_ENDINGS, bundled_embeddings, layout, load_adapter
from keypaint.core.params import GenerationParams, LoraRef, check_lora
from keypaint.errors import InvalidParams, ModelError
from keypaint.models.adapter_format import FinetuneInfo, kind_of_base_version, model_fingerprint
from keypaint.models.checkpoint_files import SafetensorsHeader, load_safetensors, read_safetensors_header
from keypaint.models.hashing import file_sha256
from keypaint.models.loaded import LoadedModel
from keypaint.models.registry import keypaint_home
from keypaint.prompts.embeddings import TextualInversion, mentioned

if TYPE_CHECKING:
    import torch

LYCORIS = ("loha", "lokr")
LORA_TAG = re.compile(r"<lora:([^:<>]+)(?::([^:<>]*))?(?::[^<>]*)?>", re.IGNORECASE)
SUFFIX = ".safetensors"
NAME = re.compile(r"\w[\w .+-]*")  # a file stem in a keypaint folder: no separators, no leading dot
MAX_VECTORS = 64  # tokens one embedding may take


def loras_dir(home: Path | None = None) -> Path:
    return (home or keypaint_home()) / "loras"


def find_lora(source: str, home: Path | None, *, allow_paths: bool, shipped: Path | None = None) -> Path:
    """A LoRA by name (<home>/loras, then those in `shipped`, the built-in model's) or, when allowed, by
    path; a same-named file in <home>/loras wins. `shipped`: `BuiltinModel.loras`, handed down."""
    folder = loras_dir(home)
    if shipped is not None and is_name(source.strip()):
        file = shipped / f"{source.strip()}{SUFFIX}"
        if not (folder / file.name).is_file() and file.is_file():
            return file
    return find_file(source, folder, "LoRA", allow_paths=allow_paths)


def embeddings_dir(home: Path | None = None) -> Path:
    return (home or keypaint_home()) / "embeddings"


def split_lora_tags(prompt: str) -> tuple[str, list[LoraRef]]:
    """The prompt without its `<lora:name:weight>` tags, and the LoRAs they name (weight 1 if left out)."""
    loras = []
    for match in LORA_TAG.finditer(prompt):
        name, weight = match.group(1).strip(), (match.group(2) or "1").strip()
        try:
            loras.append(LoraRef(name, float(weight)))
        except ValueError:
            raise InvalidParams("lora", f"<lora:{name}:{weight}>: the weight must be a number") from None
    return LORA_TAG.sub("", prompt), loras


def is_name(source: str) -> bool:
    """A bare file stem (no folders, no suffix): looked up in keypaint's folders only, never elsewhere."""
    return bool(NAME.fullmatch(source)) and not source.lower().endswith(SUFFIX)


def find_file(source: str, folder: Path, what: str, *, allow_paths: bool) -> Path:
    """NAME means `folder/NAME.safetensors`; a path (when allowed) is taken as it is. ModelError otherwise,
    naming what the folder holds."""
    source = source.strip()
    if is_name(source):
        candidate = folder / f"{source}{SUFFIX}"
        if candidate.is_file():
            return candidate
        names = [p.stem for p in list_adapter_files(folder)]
        raise ModelError(f"unknown {what} {source!r}; {folder} holds: {', '.join(names) or 'none'}")
    if not allow_paths:
        raise ModelError(f"{what} {source!r}: give the name of a file in {folder} (no folders, no suffix)")
    path = Path(source).expanduser()
    if not path.is_file():
        raise ModelError(f"{what} file not found: {source}")
    return path


@dataclass(frozen=True)
class AdapterFile:
    """A LoRA or embedding file whose header has been checked (no tensor read yet)."""

    path: Path
    header: SafetensorsHeader = field(repr=False)

    @property
    def info(self) -> FinetuneInfo | None:
        return FinetuneInfo.from_header(self.header.metadata)

    @property
    def stamp(self) -> tuple[str, int, int]:
        st = self.path.stat()
        return str(self.path.resolve()), st.st_size, st.st_mtime_ns


def read_lora_file(path: Path) -> AdapterFile:
    header = read_safetensors_header(path)
    if not any(key.endswith(LORA_ENDINGS) for key in header.tensors):
        raise ModelError(
            f"{path.name}: not a LoRA (no lora_down/lora_up, lora_A/lora_B, LoHa or LoKr weights)"
        )
    return AdapterFile(path, header)


def read_embedding_file(path: Path) -> AdapterFile:
    header = read_safetensors_header(path)
    keys = set(header.tensors)
    if not ("emb_params" in keys or {"clip_l", "clip_g"} <= keys or len(keys) == 1):
        raise ModelError(
            f"{path.name}: not a textual-inversion embedding "
            "(expected emb_params, or clip_l and clip_g for SDXL)"
        )
    return AdapterFile(path, header)


def list_adapter_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob(f"*{SUFFIX}") if p.is_file()) if folder.is_dir() else []


@dataclass
class Active:
    """What one request gets: the prompts the encoder sees, the embeddings they use, infotext fields."""

    prompt: str
    negative_prompt: str
    embeddings: list[TextualInversion]
    extra: dict[str, str]
    names: tuple[str, ...] = ()  # LoRA names and embedding triggers: words keyword expansion leaves alone


@dataclass
class Plan:
    prompt: str
    negative_prompt: str
    loras: list[tuple[AdapterFile, float]]
    embeddings: list[tuple[AdapterFile, str]]  # (file, trigger word)


def resolve_files(params: GenerationParams, home: Path | None = None,
                  shipped_loras: Path | None = None) -> Plan:
    """The LoRA and embedding files a request names (flags, prompt tags, embedding names in the prompt),
    each found and its header checked; ModelError/InvalidParams otherwise. Needs no model.
    `shipped_loras`: the built-in model's LoRA folder (`BuiltinModel.loras`), None: no shipped LoRAs."""
    prompt, tagged = split_lora_tags(params.prompt)
    for ref in tagged:
        check_lora(ref)
    refs = [(ref, True) for ref in params.loras] + [(ref, False) for ref in tagged]
    loras: list[tuple[AdapterFile, float]] = []
    for ref, allow_paths in refs:
        file = read_lora_file(find_lora(ref.source, home, allow_paths=allow_paths, shipped=shipped_loras))
        if any(other.path.resolve() == file.path.resolve() for other, _ in loras):
            raise InvalidParams("lora", f"{file.path.name} is named twice; give it once with one weight")
        loras.append((file, ref.weight))
    folder = embeddings_dir(home)
    chosen: dict[str, tuple[AdapterFile, str]] = {}
    for source in params.embeddings:
        file = read_embedding_file(find_file(source, folder, "embedding", allow_paths=True))
        info = file.info
        chosen[str(file.path.resolve())] = (file, info.token if info else file.path.stem)
    # A1111: every embedding in the folder is there to be called by its file name
    stems = {p.stem.lower(): p for p in list_adapter_files(folder)}
    for stem in sorted(mentioned(f"{prompt}\n{params.negative_prompt}", list(stems))):
        path = stems[stem]
        chosen.setdefault(str(path.resolve()), (read_embedding_file(path), path.stem))
    return Plan(prompt, params.negative_prompt, loras, list(chosen.values()))


class Adapters:
    """The LoRAs and embeddings loaded into one model, and which of them each request uses."""

    def __init__(self, model: LoadedModel, home: Path | None = None, max_loaded: int = 8,
                 shipped_loras: Path | None = None) -> None:
        self.model = model
        self.home = home
        self.shipped_loras = shipped_loras
        self.max_loaded = max_loaded
        self._loras: OrderedDict[tuple[str, int, int], str] = OrderedDict()  # file stamp -> adapter name
        self._bundles: dict[str, list[TextualInversion]] = {}  # adapter name -> the words bundled with it
        self._embeddings: dict[tuple[tuple[str, int, int], str], TextualInversion] = {}
        self._fingerprint: str | None = None
        self._counter = 0

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model)
        return self._fingerprint

    def check(self, params: GenerationParams) -> Plan:
        """Everything a request names exists, is the right kind of file and fits this model (headers only)."""
        return self._plan(params)

    def activate(self, params: GenerationParams) -> Active:
        """Load what `params` asks for (cached), weight its LoRAs, switch the others off."""
        plan = self._plan(params)
        names = [""] * len(plan.loras)
        for i in sorted(range(len(names)), key=lambda i: layout(plan.loras[i][0].header.tensors) in LYCORIS):
            names[i] = self._load_lora(plan.loras[i][0])  # LoRAs first: LoHa/LoKr layers wrap them
        self._use(names, [weight for _, weight in plan.loras])
        embeddings = [self._load_embedding(file, trigger) for file, trigger in plan.embeddings]
        text = f"{plan.prompt}\n{plan.negative_prompt}"
        bundled = [e for n, (_, w) in zip(names, plan.loras, strict=True) if w for e in self._bundles[n]]
        embeddings += [e for e in bundled if mentioned(text, [e.token])]
        extra: dict[str, str] = {}
        if plan.loras:
            extra["Lora hashes"] = ", ".join(f"{f.path.stem}: {self._hash(f)[:10]}" for f, _ in plan.loras)
            extra["Lora weights"] = ", ".join(f"{f.path.stem}: {w:g}" for f, w in plan.loras)
        if embeddings:
            extra["TI hashes"] = ", ".join(f"{e.token}: {(e.sha256 or '')[:10]}" for e in embeddings)
        names = tuple(f.path.stem for f, _ in plan.loras) + tuple(e.token for e in embeddings)
        return Active(plan.prompt, plan.negative_prompt, embeddings, extra, names)

    # 1. what a request names, checked against this model without loading tensors
    def _plan(self, params: GenerationParams) -> Plan:
        return self.fit(resolve_files(params, self.home, self.shipped_loras))

    def fit(self, plan: Plan) -> Plan:
        """`plan`'s files (from `resolve_files`) fit this model; `InvalidParams`/`ModelError` otherwise."""
        for file, _ in plan.loras:
            self._check_base(file, "LoRA")
        for file, _ in plan.embeddings:
            self._check_base(file, "embedding")
        if plan.embeddings and self.model.kind.is_flow:
            raise ModelError("textual-inversion embeddings are for SD 1.x, 2.x and SDXL; "
                             f"{self.model.name} is "
                             f"{self.model.kind.value}")
        return plan

    def _check_base(self, file: AdapterFile, what: str) -> None:
        model = self.model
        info = file.info
        if info is not None:
            bases = {self.fingerprint(), *model.aliases}  # a compact U-Net also accepts its fp16 source's
            if info.base_kind != model.kind.value or info.base_sha256 not in bases:
                raise ModelError(
                    f"{what} {file.path.name} was trained on {info.base_model} ({info.base_short}), but the "
                    f"model loaded is {model.name} ({self.fingerprint()[:10]}); use --model "
                    f"{info.base_model}, or fine-tune on {model.name}"
                )
            return
        kind = kind_of_base_version(file.header.metadata.get("ss_base_model_version"))
        if kind is not None and kind is not model.kind:
            raise ModelError(
                f"{what} {file.path.name} was made for {kind.value} models, but the model "
                f"loaded is {model.name} ({model.kind.value})"
            )

    def _hash(self, file: AdapterFile) -> str:
        return file_sha256(file.path, home=self.home)

    # 2. LoRAs as peft adapters
    def _load_lora(self, file: AdapterFile) -> str:
        stamp = file.stamp
        loaded = getattr(self.model.denoiser, "peft_config", None) or {}
        if stamp in self._loras and self._loras[stamp] in loaded:  # (LoHa/LoKr may have been taken off)
            self._loras.move_to_end(stamp)
            return self._loras[stamp]
        self._bundles.pop(self._loras.pop(stamp, ""), None)
        name = f"keypaint-{self._counter}"
        self._counter += 1
        state = load_safetensors(file.path)
        bundled = [  # the words a pivotal-tuning LoRA carries, checked before its layers are loaded
            TextualInversion(token, self._vectors(tensors, f"{file.path.name}'s {token}"), source=file.path,
                             sha256=self._hash(file))
            for token, tensors in bundled_embeddings(state).items()
        ]
        try:
            load_adapter(self.model.pipe, state, name)
        except (ValueError, RuntimeError, KeyError, TypeError) as exc:
            self._delete(name)
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"LoRA {file.path.name} does not fit {self.model.name} ({self.model.kind.value}): {reason}"
            ) from None
        self._loras[stamp] = name
        self._bundles[name] = bundled
        while len(self._loras) > self.max_loaded:
            _, old = self._loras.popitem(last=False)
            self._delete(old)
        return name

    def _use(self, names: list[str], weights: list[float]) -> None:
        pipe = self.model.pipe
        if not self._loras:
            return  # nothing of ours loaded: the model stays as it is (a LoRA under training, say)
        names, weights = [n for n, w in zip(names, weights, strict=True) if w], [w for w in weights if w]
        if names:  # weight 0 is off (a DoRA magnitude would act even at scale 0)
            pipe.enable_lora()
            pipe.set_adapters(names, adapter_weights=weights)
        else:
            pipe.disable_lora()

    def _delete(self, name: str) -> None:
        self._bundles.pop(name, None)
        with contextlib.suppress(ValueError, KeyError, AttributeError):
            self.model.pipe.delete_adapters(name)  # a failed load may have left nothing to delete

    # 3. embeddings
    def _load_embedding(self, file: AdapterFile, trigger: str) -> TextualInversion:
        key = (file.stamp, trigger)
        if key in self._embeddings:
            return self._embeddings[key]
        vectors = self._vectors(load_safetensors(file.path), f"embedding {file.path.name}")
        embedding = TextualInversion(trigger, vectors, source=file.path, sha256=self._hash(file))
        self._embeddings[key] = embedding
        return embedding

    def _vectors(self, tensors: dict[str, torch.Tensor], what: str) -> tuple[torch.Tensor, ...]:
        """An A1111 embedding's vectors, one (n, dim) per text encoder; ModelError if they do not fit."""
        encoders = [self.model.pipe.text_encoder]
        names = ["emb_params"]
        if self.model.kind.is_xl:
            encoders.append(self.model.pipe.text_encoder_2)
            names = ["clip_l", "clip_g"]
        if len(tensors) == 1 and not self.model.kind.is_xl:
            tensors = {"emb_params": next(iter(tensors.values()))}
        vectors = []
        for encoder, name in zip(encoders, names, strict=True):
            if name not in tensors:
                raise ModelError(
                    f"{what} has no {name} vectors, which {self.model.name} ({self.model.kind.value}) needs"
                )
            tensor = tensors[name].float()
            tensor = tensor.unsqueeze(0) if tensor.dim() == 1 else tensor
            dim = int(encoder.get_input_embeddings().embedding_dim)
            if tensor.dim() != 2 or tensor.shape[-1] != dim or not 1 <= tensor.shape[0] <= MAX_VECTORS:
                raise ModelError(
                    f"{what} has vectors of shape {tuple(tensor.shape)}, "
                    f"but {self.model.name} ({self.model.kind.value}) takes (n, {dim})"
                )
            vectors.append(tensor)
        return tuple(vectors)
