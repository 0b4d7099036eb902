"""`FinetuneConfig`: what --method auto picks, each method's defaults, and what a resumed run must share."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from keypaint.finetune import FinetuneConfig, FinetuneError, Method
from keypaint.finetune.config import AUTO_BUILTIN, AUTO_BUILTIN_LR


def test_auto_picks_by_the_base_model() -> None:
    cfg = FinetuneConfig(images=Path("pictures"), token="zqstyle")
    assert cfg.method is Method.AUTO  # the default
    assert cfg.resolved().method is AUTO_BUILTIN  # the built-in model
    assert replace(cfg, base="builtin").resolved().method is AUTO_BUILTIN
    assert replace(cfg, base="keypaint-emoji").resolved().method is AUTO_BUILTIN
    for checkpoint in ("v1-5-pruned-emaonly", "sd_xl_base_1.0.safetensors", "models/sd21"):
        assert replace(cfg, base=checkpoint).resolved().method is Method.LORA
    assert replace(cfg, base="v1-5", method=Method.LOKR).resolved().method is Method.LOKR  # as asked
    assert cfg.identity()["method"] == AUTO_BUILTIN.value  # a resumed run compares the method that ran
    assert cfg.resolved().learning_rate == AUTO_BUILTIN_LR  # the rate measured best on the built-in model
    assert replace(cfg, lr=5e-5).resolved().learning_rate == 5e-5  # unless one is given
    assert replace(cfg, base="v1-5").resolved().learning_rate == Method.LORA.default_lr


def test_each_method_has_its_defaults() -> None:
    cfg = FinetuneConfig(images=Path("pictures"), token="zqstyle", base="tiny")
    rates = {m: replace(cfg, method=m).learning_rate for m in Method if m is not Method.AUTO}
    assert rates[Method.FULL] == 2e-5 and rates[Method.TEXTUAL_INVERSION] == 5e-3
    assert all(rates[m] == 1e-4 for m in Method if m.makes_lora)
    pivotal = replace(cfg, method=Method.PIVOTAL)
    assert (pivotal.learning_rate, pivotal.embedding_learning_rate, pivotal.vector_count) == (1e-4, 5e-3, 4)
    assert replace(cfg, method=Method.B_LORA).lora_targets == "style"
    assert replace(cfg, method=Method.DORA).lora_targets == "all"
    assert replace(cfg, rank=8).identity() == cfg.identity()  # a default given or left out: the same run
    assert replace(cfg, rank=4).identity() != cfg.identity()


def test_options_of_other_methods_are_refused_in_one_line() -> None:
    cfg = FinetuneConfig(images=Path("pictures"), token="zqstyle", base="tiny")
    with pytest.raises(FinetuneError, match="--rank is for the LoRA methods; --method textual-inversion"):
        replace(cfg, method=Method.TEXTUAL_INVERSION, rank=4).check()
    with pytest.raises(FinetuneError, match="--vectors and --init-word are for textual-inversion and piv"):
        replace(cfg, vectors=2).check()  # auto: lora
    replace(cfg, method=Method.PIVOTAL, vectors=2, init_word="dog", rank=4, embedding_lr=1e-2).check()
