"""The classifier-head baseline: a pretrained encoder, a pooled vector, a new linear layer.

This is standard fine-tuning (Devlin et al. 2019), the method PET is measured against: the task
is *not* turned into the pretraining task — a freshly initialised ``Linear(H, C)`` has to learn
what "positive" means from the few labelled examples alone. ``train_backbone=True`` fine-tunes
everything (the usual recipe), ``False`` trains the head only (a linear probe).

Pooling: ``"mean"`` (the mean of the token vectors, as all-MiniLM-L6-v2 was trained for), ``"cls"``
(the first token, BERT's [CLS]), or ``"last"`` (the last real token, for a causal LM).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .backbones import Backbone
from .cloze import positions_from_mask

POOLINGS = ("mean", "cls", "last")


@dataclass
class HeadConfig:
    num_labels: int  # classes C
    train_backbone: bool = True  # True: full fine-tuning; False: only the head trains
    pooling: str = "mean"  # "mean" | "cls" | "last" (how the token vectors become one)
    max_length: int = 128  # tokens per input (longer inputs are truncated)
    dropout: float = 0.1  # on the pooled vector, during training
    seed: int = 0  # the head's initial weights


class HeadClassifier(nn.Module):
    """Texts → class logits ``(B, C)`` through ``backbone`` and a new linear head.

    Input: a list of ``B`` texts (or ``{"text_a": [...], "text_b": [...]}`` for pairs).
    Output shape: ``(B, num_labels)``.

    Fine-tuning changes the backbone's weights in place: give each run its own backbone
    (``copy.deepcopy`` or a fresh :func:`~prompt_learning.backbones.load_backbone`).

    >>> clf = HeadClassifier(load_backbone("minilm-l6"), num_labels=2)
    >>> clf(["a fine film", "a dull film"]).shape
    torch.Size([2, 2])
    """

    def __init__(self, backbone: Backbone, num_labels: int, train_backbone: bool = True,
                 pooling: str | None = None, max_length: int = 128, dropout: float = 0.1, seed: int = 0):
        super().__init__()
        if backbone.kind == "seq2seq":
            raise ValueError(f"{backbone.name!r} is an encoder-decoder; a head classifier needs an encoder "
                             "(e.g. 'minilm-l6'), a masked LM or a causal LM")
        if num_labels < 2:
            raise ValueError(f"num_labels must be at least 2, got {num_labels}")
        pooling = pooling or ("last" if backbone.kind == "causal-lm" else "mean")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if pooling == "last" and backbone.kind != "causal-lm":
            raise ValueError("pooling='last' reads the final token of a causal LM; use 'mean' or 'cls' "
                             f"for {backbone.name!r} ({backbone.kind})")
        self.config = HeadConfig(num_labels, train_backbone, pooling, max_length, dropout, seed)
        self.backbone = backbone
        self.tokenizer = backbone.tokenizer
        self.encoder = backbone.model.base_model  # the transformer without any LM head
        for p in self.encoder.parameters():
            p.requires_grad_(train_backbone)
        hidden = backbone.model.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_labels)  # the only new weights: (C, H) and (C,)
        nn.init.normal_(self.head.weight, std=0.02, generator=torch.Generator().manual_seed(seed))
        nn.init.zeros_(self.head.bias)
        self.head.to(next(self.encoder.parameters()).device)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.config.train_backbone:
            self.encoder.eval()  # a frozen backbone keeps its dropout off
        return self

    def encode(self, texts) -> dict[str, torch.Tensor]:
        if isinstance(texts, dict):
            args = (list(texts["text_a"]),) + ((list(texts["text_b"]),) if "text_b" in texts else ())
        else:
            args = (list(texts),)
        batch = self.tokenizer(*args, padding=True, truncation=True, max_length=self.config.max_length,
                               return_tensors="pt")
        device = self.head.weight.device
        keep = ("input_ids", "attention_mask", "token_type_ids")
        return {k: v.to(device) for k, v in batch.items() if k in keep}

    def pooled(self, texts) -> torch.Tensor:
        """One vector per text ``(B, H)``."""
        batch = self.encode(texts)
        mask = batch["attention_mask"]  # (B, T)
        extra = {"position_ids": positions_from_mask(mask)} if self.config.pooling == "last" else {}
        with torch.set_grad_enabled(self.config.train_backbone and torch.is_grad_enabled()):
            hidden = self.encoder(**batch, **extra).last_hidden_state  # (B, T, H)
        if self.config.pooling == "cls":
            return hidden[:, 0]  # (B, H)
        if self.config.pooling == "last":
            return hidden[:, -1]  # (B, H): causal LMs are padded on the left
        m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, H)

    def forward(self, texts) -> torch.Tensor:
        return self.head(self.dropout(self.pooled(texts)))  # (B, C)
