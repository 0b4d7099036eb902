"""Prompt conditioning for SD3 and Flux.1, through their pipelines' own `encode_prompt`.

SD3 concatenates CLIP-L's and CLIP-G's penultimate states, pads them to T5's width and appends T5's
states; the pooled vector is both CLIPs' projected outputs side by side. Flux conditions on T5's states
and CLIP-L's pooled output. The T5 encoder reads up to 256 tokens (SD3, Flux schnell) or 512 (Flux dev),
so A1111's 75-token chunking does not apply; neither does its `(word:1.3)` emphasis, which these models
were not trained with (the text is passed as written, `<lora:...>` tags already taken out).
"""

from __future__ import annotations

import torch

from keypaint.models.loaded import LoadedModel, ModelKind
from keypaint.prompts.encode import PromptEmbeddings

SD3_T5_TOKENS = 256
FLUX_T5_TOKENS = {True: 512, False: 256}  # dev (guidance input), schnell


def encode_flow_prompts(model: LoadedModel, prompt: str, negative_prompt: str, *, device: torch.device | str,
                        dtype: torch.dtype) -> PromptEmbeddings:
    """Embeddings, pooled embeddings and their negatives for an SD3 or Flux model."""
    pipe = model.pipe
    with torch.no_grad():
        if model.kind is ModelKind.FLUX:
            length = FLUX_T5_TOKENS[bool(pipe.transformer.config.guidance_embeds)]
            positive, pooled, _ids = pipe.encode_prompt(prompt=prompt, prompt_2=None, device=device,
                                                        max_sequence_length=length)
            negative, negative_pooled, _ids = pipe.encode_prompt(prompt=negative_prompt, prompt_2=None,
                                                                 device=device, max_sequence_length=length)
        else:
            positive, negative, pooled, negative_pooled = pipe.encode_prompt(
                prompt=prompt, prompt_2=None, prompt_3=None, negative_prompt=negative_prompt, device=device,
                do_classifier_free_guidance=True, max_sequence_length=SD3_T5_TOKENS)
    return PromptEmbeddings(*(t.to(device=device, dtype=dtype) for t in (positive, negative, pooled,
                                                                         negative_pooled)))
