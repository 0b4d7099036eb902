"""The frozen CPU path: the built-in model painted with ONNX Runtime and numpy, without importing PyTorch.

- `bundle`: what a CPU fast-path run leaves on disk for later processes (graphs, tokenizer, plans).
- `plan`: a deterministic sampler's whole run as linear maps, read off diffusers' scheduler.
- `noise`: x_T from a seed exactly as PyTorch's CPU generator draws it.
- `model`: `ColdStartModel`, which paints a covered request from the bundle; `record` writes the bundle.

The `Painter` chooses it (`SpeedOptions(fast=True, frozen=True)`, the CLI's `--fast`); on a request the
bundle does not cover it loads the full model, so the path is never a different product, only a faster
start.
"""
