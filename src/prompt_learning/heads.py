"""The classifier-head baseline: a pretrained encoder, a pooled vector, a new linear layer.

This is standard fine-tuning (Devlin et al. 2019), the method PET is measured against: the task
is *not* turned into the pretraining task — a freshly initialised ``Linear(H, C)`` has to learn
what "positive" means from the few labelled examples alone. ``train_backbone=True`` fine-tunes
everything (the usual recipe), ``False`` trains the head only (a linear probe).

Pooling: ``"mean"`` (the mean of the token vectors, as all-MiniLM-L6-v2 was trained for), ``"first"``
(the first real token, BERT's [CLS]; ``"cls"`` is accepted for it), or ``"last"`` (the last real
token, for a causal LM, which reads left to right).

P-tuning v2 (:mod:`prompt_learning.p_tuning_v2`) is this same head with deep prompts in the
encoder's layers: the one head baseline of the book, with and without prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .backbones import Backbone
from .method import InputError, PromptLearningConfig, PromptMethod, check_inputs
from .positions import check_positions, position_ids
from .precision import to_dtype_of

POOLINGS = ("first", "mean", "last")


@dataclass
class HeadConfig(PromptLearningConfig):
    train_backbone: bool = True  # True: full fine-tuning; False: only the head trains (a linear probe)
    pooling: str | None = None  # "first" | "mean" | "last"; None: "last" for a causal LM, else "mean"
    dropout: float = 0.1  # on the pooled vector, during training

    def __post_init__(self):
        super().__post_init__()
        self.pooling = "first" if self.pooling == "cls" else self.pooling
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise InputError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")


def class_names(labels: Sequence[str] | int) -> list[str]:
    """Class names from a list of names, or ``"0" … "C-1"`` from a count."""
    if isinstance(labels, int) and not isinstance(labels, bool):
        return [str(i) for i in range(labels)]
    if isinstance(labels, str) or not all(isinstance(n, str) for n in labels):
        raise InputError(f"labels must be a list of class names (or a class count), got {labels!r}")
    return list(labels)


class HeadClassifier(PromptMethod):
    """Texts → class logits ``(B, C)`` through ``backbone`` and a new linear head.

    Input: a list of ``B`` texts (or ``{"text_a": [...], "text_b": [...]}`` for pairs).
    Output shape: ``(B, C)``.

    Fine-tuning changes the backbone's weights in place: give each run its own backbone
    (``copy.deepcopy`` or a fresh :func:`~prompt_learning.backbones.load_backbone`).

    >>> clf = HeadClassifier(load_backbone("minilm-l6"), ["negative", "positive"])
    >>> clf(["a fine film", "a dull film"]).shape
    torch.Size([2, 2])
    """

    config_class = HeadConfig

    def __init__(self, backbone: Backbone, labels: Sequence[str] | int, config: HeadConfig | None = None):
        config = config if config is not None else self.config_class()
        names = class_names(labels)
        super().__init__(backbone, config, names)
        if backbone.kind == "seq2seq":
            raise InputError(
                f"{backbone.name!r} is an encoder-decoder; a head classifier needs an encoder "
                "(e.g. 'minilm-l6'), a masked LM or a causal LM"
            )
        if len(names) < 2:
            raise InputError(f"a classifier needs at least two classes, got {names}")
        self.pooling = config.pooling or ("last" if backbone.kind == "causal-lm" else "mean")
        if self.pooling == "last" and backbone.kind != "causal-lm":
            raise InputError(
                "pooling='last' reads the final token of a causal LM; use 'mean' or 'first' "
                f"for {backbone.name!r} ({backbone.kind})"
            )
        check_positions(self.model, config.max_length, self.position_offset)
        self.encoder = backbone.model.base_model  # the transformer without any LM head
        self.model.requires_grad_(False)  # an LM head on top, if any, is not used
        self.encoder.requires_grad_(config.train_backbone)
        hidden = backbone.model.config.hidden_size
        self.dropout = nn.Dropout(config.dropout)
        head = nn.Linear(hidden, len(names))  # the only new weights: (C, H) and (C,), fp32
        nn.init.normal_(head.weight, std=0.02, generator=torch.Generator().manual_seed(config.seed))
        nn.init.zeros_(head.bias)
        self.head = head.to(self.device)

    @property
    def position_offset(self) -> int:
        """Positions taken before the text (none here; P-tuning v2's prefix takes some)."""
        return 0

    def encode(self, columns: dict[str, list[str]]) -> dict[str, torch.Tensor]:
        args = (columns["text_a"], columns["text_b"]) if "text_a" in columns else (columns["text"],)
        batch = self.tokenizer(
            *args, padding=True, truncation=True, max_length=self.config.max_length, return_tensors="pt"
        )
        keep = ("input_ids", "attention_mask", "token_type_ids")
        return {k: v.to(self.device) for k, v in batch.items() if k in keep}

    def hidden_states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last hidden states ``(B, T, H)`` of the encoder."""
        extra = (
            {"position_ids": position_ids(batch["attention_mask"])}
            if self.backbone.kind == "causal-lm"
            else {}
        )
        return self.encoder(**batch, **extra).last_hidden_state

    def pooled(self, columns: dict[str, list[str]]) -> torch.Tensor:
        """One vector per text ``(B, H)``."""
        batch = self.encode(columns)
        mask = batch["attention_mask"]  # (B, T)
        hidden = self.hidden_states(batch)  # (B, T, H)
        if self.pooling == "first":
            first = mask.long().argmax(-1)  # (B,) the first real token (left padding safe)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]  # (B, H)
        if self.pooling == "last":
            return hidden[:, -1]  # (B, H): causal LMs are padded on the left
        m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, H)

    def forward(self, texts) -> torch.Tensor:
        """Class logits ``(B, C)`` for a list of texts, or ``{"text_a": [...], "text_b": [...]}``."""
        if isinstance(texts, dict):
            columns = ("text_a", "text_b") if "text_b" in texts else ("text_a",)
        else:
            columns = ("text",)
        return self.logits(check_inputs(texts, columns))

    def logits(self, columns: dict[str, list[str]]) -> torch.Tensor:
        pooled = to_dtype_of(self.pooled(columns), self.head)  # (B, H): a bf16 backbone meets the fp32 head
        return self.head(self.dropout(pooled))  # (B, C)

    def checkpoint_spec(self) -> dict:
        return {"labels": self.labels, "config": self.config.to_dict()}

    @classmethod
    def from_checkpoint_spec(cls, backbone: Backbone, spec: dict) -> HeadClassifier:
        return cls(backbone, spec["labels"], cls.config_class.from_dict(spec["config"]))
