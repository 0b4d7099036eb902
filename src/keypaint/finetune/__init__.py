"""`keypaint finetune`: teach a model a new style or character from a few pictures.

LoRA and DreamBooth (LoRA with prior preservation) write a small kohya-layout `.safetensors` LoRA;
textual inversion writes an A1111-layout embedding. Both carry their base model's hash, token, method,
steps and the pictures used (`metadata.FinetuneInfo`), and are applied with `keypaint generate --lora` /
`--embedding`, `<lora:NAME:0.8>` in a prompt, or the server's fields. The training loop is
`keypaint.finetune.train.finetune` (not imported here, so reading metadata stays light).
"""

from keypaint.finetune.config import FinetuneConfig, FinetuneError, Method
from keypaint.models.adapter_format import FinetuneInfo

__all__ = ["FinetuneConfig", "FinetuneError", "FinetuneInfo", "Method"]
