"""Run profiles: every experiment of the book sized in one place.

* ``smoke`` — CI runs every notebook this way: the embedded backbones, a handful of examples, a
  few steps; the numbers mean nothing, the code paths are the real ones.
* ``cpu`` — the default and the website: embedded backbones (SmolLM2-135M, MiniLM-L6), sized
  so the whole book executes in about 20 minutes on 2 CPU cores.
* ``gpu`` — Colab or any CUDA machine: hub backbones at paper scale, more shots and seeds.

Choose with ``PROMPT_LEARNING_PROFILE=smoke|cpu|gpu``; on Colab with a GPU and nothing set,
``gpu`` is chosen. Every notebook prints the profile it ran.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import torch


@dataclass(frozen=True)
class Profile:
    name: str
    causal_lm: str  # decoder used for cloze-at-the-end, in-context learning, generation
    encoder: str  # encoder for heads, P-tuning v2 (an MLM in the gpu profile)
    masked_lm: str  # masked LM for PET with the mask anywhere (a tiny one where none is embedded)
    chinese_mlm: str | None  # Chinese masked LM (hub only)
    n_eval: int  # test sentences each accuracy is measured on (fixed, class-balanced subset)
    seeds: tuple[int, ...]  # training / sampling seeds; spreads are over these
    shots: tuple[int, ...]  # k examples per class for few-shot training
    icl_shots: tuple[int, ...]  # demonstrations per prompt for in-context learning
    steps: int  # optimiser steps per training run
    batch_size: int
    max_length: int  # tokens per input (longer inputs are truncated)
    mixed_precision: str = "no"  # passed to accelerate: "no" | "bf16" | "fp16"
    extra: dict = field(default_factory=dict)  # chapter-specific sizes, read by key

    def describe(self) -> str:
        return (f"profile {self.name!r}: causal LM {self.causal_lm}, encoder {self.encoder}, "
                f"{self.n_eval} test examples, seeds {list(self.seeds)}, k {list(self.shots)}, "
                f"{self.steps} steps × batch {self.batch_size}, device {device_name()}")


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", "smollm2-135m", "minilm-l6", "tiny-roberta", None, n_eval=16,
                     seeds=(0,), shots=(2,), icl_shots=(0, 1), steps=2, batch_size=4, max_length=48),
    "cpu": Profile("cpu", "smollm2-135m", "minilm-l6", "tiny-roberta", None, n_eval=200,
                   seeds=(0, 1, 2), shots=(8, 16), icl_shots=(0, 1, 2, 4, 8), steps=40,
                   batch_size=8, max_length=64),
    "gpu": Profile("gpu", "HuggingFaceTB/SmolLM2-1.7B-Instruct", "roberta-large", "roberta-large", "bert-base-chinese",
                   n_eval=1000, seeds=(0, 1, 2, 3, 4), shots=(4, 8, 16, 32), icl_shots=(0, 1, 2, 4, 8, 16),
                   steps=250, batch_size=16, max_length=128, mixed_precision="bf16"),
}


class ProfileError(ValueError):
    pass


def device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def _default() -> str:
    on_colab = "COLAB_RELEASE_TAG" in os.environ or "COLAB_GPU" in os.environ
    return "gpu" if on_colab and torch.cuda.is_available() else "cpu"


def get_profile(name: str | None = None, **overrides) -> Profile:
    """The profile ``name`` (default: ``$PROMPT_LEARNING_PROFILE``, else cpu / gpu on Colab)."""
    name = name or os.environ.get("PROMPT_LEARNING_PROFILE") or _default()
    if name not in PROFILES:
        raise ProfileError(f"unknown profile {name!r}; set PROMPT_LEARNING_PROFILE to one of {list(PROFILES)}")
    if name == "gpu" and not torch.cuda.is_available():
        raise ProfileError("the 'gpu' profile needs a CUDA GPU and none is visible; "
                           "use PROMPT_LEARNING_PROFILE=cpu (or on Colab: Runtime → Change runtime type → GPU)")
    return replace(PROFILES[name], **overrides)
