"""LoRA, the reference row: low-rank updates of a frozen model's weights, read through the cloze
(Hu et al. 2022, "LoRA: Low-Rank Adaptation of Large Language Models").

Each targeted linear layer ``W`` (``d_out × d_in``, frozen) gains a trainable update of rank ``r``::

    h = W x + (α / r) · B A x        A: (r, d_in), random;  B: (d_out, r), zero at the start

so before any step the model is the pretrained one, and a task stores ``r · (d_in + d_out)``
numbers per layer. LoRA changes weights, not the input: it is not a prompt method, and the book
uses it as the yardstick prompt methods are weighed against. It comes from 🤗 PEFT
(``peft.inject_adapter_in_model``), not written here; :class:`LoRACloze` reads the answer through
the same template and label words as PET and prompt tuning, so the comparison differs only in what
trains. Hu et al. adapt ``q_proj`` and ``v_proj`` (``W_q``, ``W_v``); so does the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .backbones import Backbone
from .cloze import ClozeClassifier
from .method import InputError, PromptLearningConfig, seeded
from .templates import Template
from .verbalizers import Verbalizer


@dataclass
class LoRAConfig(PromptLearningConfig):
    """LoRA's settings: the rank, the scale, the dropout and the layers it adapts (PEFT's names)."""

    r: int = 8  # rank of each update B A
    alpha: float = 16.0  # the update is scaled by alpha / r
    dropout: float = 0.0  # on the LoRA branch's input (PEFT's lora_dropout)
    target_modules: Sequence[str] = ("q_proj", "v_proj")  # names of the linear layers to adapt

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise InputError(f"LoRAConfig.r must be a positive integer (the rank, e.g. 8), got {self.r!r}")
        if not 0 <= self.dropout < 1:
            raise InputError(f"LoRAConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.target_modules, str) or not self.target_modules:
            raise InputError(
                "LoRAConfig.target_modules must be a list of layer names such as "
                f"['q_proj', 'v_proj'], got {self.target_modules!r}"
            )
        self.target_modules = tuple(self.target_modules)


class LoRACloze(ClozeClassifier):
    """A cloze classifier whose backbone trains only LoRA updates (via PEFT) of its attention weights.

    >>> clf = LoRACloze(load_backbone("tiny-llama"), "{text} It was {mask}.",
    ...                 Verbalizer({"negative": "bad", "positive": "good"}), LoRAConfig(r=4))
    >>> clf(["a fine film"]).shape
    torch.Size([1, 2])

    The adapters are added to ``backbone.model`` in place: give it a backbone of its own
    (``load_backbone`` again), as for PET. Input: texts (B). Output: class logits (B, C); before
    training they equal the zero-shot :class:`~prompt_learning.cloze.ClozeClassifier`'s (``B = 0``).
    """

    config_class = LoRAConfig

    def __init__(
        self,
        backbone: Backbone,
        template: Template | str,
        verbalizer: Verbalizer,
        config: LoRAConfig | None = None,
    ):
        config = config if config is not None else LoRAConfig()
        if not isinstance(config, LoRAConfig):
            raise InputError(f"LoRACloze takes a LoRAConfig, got {type(config).__name__}")
        if any("lora_" in name for name, _ in backbone.model.named_parameters()):
            raise InputError(
                f"{backbone.name!r} already carries LoRA adapters (from another method): "
                "give each LoRACloze a backbone of its own, load_backbone(...) again"
            )
        names = {
            name.rsplit(".", 1)[-1]
            for name, m in backbone.model.named_modules()
            if isinstance(m, torch.nn.Linear)
        }
        missing = [t for t in config.target_modules if t not in names]
        if missing:
            raise InputError(
                f"{backbone.name!r} has no linear layers named {missing}; its linear layers are "
                f"{sorted(names)} — choose target_modules among them"
            )
        super().__init__(backbone, template, verbalizer, config)  # validates, then freezes the backbone
        from peft import LoraConfig, inject_adapter_in_model  # imported here: only this method needs PEFT

        with seeded(config.seed):  # A's random start, reproducible
            inject_adapter_in_model(
                LoraConfig(
                    r=config.r,
                    lora_alpha=config.alpha,
                    lora_dropout=config.dropout,
                    target_modules=list(config.target_modules),
                ),
                backbone.model,
            )
        for name, p in backbone.model.named_parameters():
            p.requires_grad_("lora_" in name)  # A and B train; every pretrained weight stays frozen
