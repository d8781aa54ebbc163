"""P-tuning v2 (Liu et al. 2022): deep prompts and a classification head on a frozen encoder.

The prompts are the same per-layer keys/values as prefix tuning (Li & Liang 2021) — both put
continuous prompts in every layer. What P-tuning v2 changes (§3.2–3.3 of the paper):

* no reparameterisation by default: the per-layer table is trained directly (an MLP is an
  option: the paper finds it helps on some tasks and hurts on others);
* a randomly initialised linear head on the first token instead of a verbalizer, so it works
  for any label set and for encoders without an LM head;
* it is evaluated across model scales (300M–10B) and hard NLU tasks, where shallow prompt tuning
  (Lester et al. 2021) lags fine-tuning at small scales and deep prompts close the gap.

``layers`` chooses where prompts go: every layer (deep, the default), the first ``l`` layers
(``layers=1`` is the shallow variant, prompts at layer 0 only), or any explicit set of layers.
``num_virtual_tokens=0`` is a linear head on a frozen encoder; ``train_backbone=True`` is full
fine-tuning with the same head — the two baselines of the paper's tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .backbones import Backbone
from .kv_prefix import KVPrefix, PrefixError, check_length, enable_prefixes, prefixed_forward
from .prefix_tuning import PrefixEncoder


@dataclass
class PTuningV2Config:
    num_virtual_tokens: int = 16  # prompt length per layer (the paper: < 20 for classification)
    layers: int | Sequence[int] | None = None  # None: every layer; l: the first l; a sequence: those layers
    reparameterize: bool = False  # an MLP as in prefix tuning (off by default in P-tuning v2)
    reparam_hidden: int = 512  # MLP hidden width when reparameterised
    init_std: float = 1.0  # random prompt table N(0, init_std²) (the paper's code: an nn.Embedding)
    prompt_dropout: float = 0.0  # dropout on the prompt keys/values during training
    head_dropout: float = 0.1  # dropout before the linear head
    pooling: str = "first"  # "first": the first token ([CLS]) as in the paper; "mean": mean of real tokens
    max_length: int = 128  # text tokens (the prompts come on top)
    train_backbone: bool = False  # True: full fine-tuning of the encoder as well
    shift_positions: bool = True  # text starts at position P, as in the paper's code
    seed: int = 0  # the prompts' and the head's initial values


class PTuningV2(nn.Module):
    """Deep prompts + a linear head on the first token: texts → class logits ``(B, C)``.

    >>> m = PTuningV2(load_backbone("tiny-bert"), num_classes=2, config=PTuningV2Config(4))
    >>> m(["a fine film", "a dull plot"]).shape
    torch.Size([2, 2])
    """

    def __init__(self, backbone: Backbone, num_classes: int, config: PTuningV2Config = PTuningV2Config()):
        super().__init__()
        if backbone.kind not in ("encoder", "masked-lm"):
            raise PrefixError(f"P-tuning v2 classifies with an encoder; {backbone.name!r} is a "
                              f"{backbone.kind}. "
                              "Use an encoder (e.g. 'minilm-l6'), or PrefixTuning with a template on an LM")
        if config.pooling not in ("first", "mean"):
            raise PrefixError(f"pooling={config.pooling!r}: choose 'first' ([CLS], the paper) or 'mean'")
        if num_classes < 2:
            raise PrefixError(f"num_classes must be at least 2, got {num_classes}")
        if config.num_virtual_tokens < 0:
            raise PrefixError(f"num_virtual_tokens must be ≥ 0, got {config.num_virtual_tokens}")
        self.backbone, self.tokenizer, self.config = backbone, backbone.tokenizer, config
        self.encoder = backbone.model.base_model  # BertModel / RobertaModel: no LM head needed
        self.encoder.requires_grad_(config.train_backbone)
        self.slot_of = enable_prefixes(backbone.model)
        all_slots = list(dict.fromkeys(self.slot_of.values()))
        n_layers = len(all_slots)
        chosen = _chosen_layers(config.layers, n_layers)
        self.slots = [s for s in all_slots if s.layer in chosen]
        check_length(self.encoder, config.num_virtual_tokens, config.max_length, config.shift_positions)
        hidden = self.encoder.config.hidden_size
        with torch.random.fork_rng(devices=[]):  # seeded, and the caller's random state untouched
            torch.manual_seed(config.seed)
            self.prompts = PrefixEncoder(self.slots, config.num_virtual_tokens, config.reparameterize, hidden,
                                         config.reparam_hidden, config.init_std)
            self.head = nn.Linear(hidden, num_classes)
        self.prompt_dropout = nn.Dropout(config.prompt_dropout)
        self.dropout = nn.Dropout(config.head_dropout)
        self.to(self.encoder.get_input_embeddings().weight.device)

    def prefix(self) -> KVPrefix:
        keys, values = self.prompts()
        drop = self.prompt_dropout
        return KVPrefix(self.slot_of, {s: drop(k) for s, k in keys.items()},
                        {s: drop(v) for s, v in values.items()}, self.config.num_virtual_tokens,
                        self.config.shift_positions)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.config.max_length,
                             return_tensors="pt")
        device = self.head.weight.device
        return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled last hidden states ``(B, H)``: the first real token ([CLS] / <s>) or the mean."""
        hidden = prefixed_forward(self.encoder, self.prefix(), input_ids, attention_mask).last_hidden_state
        if self.config.pooling == "mean":
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            return (hidden * m).sum(1) / m.sum(1)  # (B, H)
        first = attention_mask.long().argmax(-1)  # (B,) index of the first real token (left padding safe)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]  # (B, H)

    def forward(self, texts: list[str]) -> torch.Tensor:
        b = self.encode(texts)
        return self.head(self.dropout(self.features(b["input_ids"], b["attention_mask"])))  # (B, C)


def _chosen_layers(layers: int | Sequence[int] | None, n: int) -> set[int]:
    if layers is None:
        return set(range(n))
    if isinstance(layers, int):
        if not 0 <= layers <= n:
            raise PrefixError(f"layers={layers}: the encoder has {n} layers; choose 0..{n} (1 = shallow, "
                              f"{n} or None = deep)")
        return set(range(layers))
    bad = [i for i in layers if not 0 <= i < n]
    if bad:
        raise PrefixError(f"layers {bad} do not exist: the encoder's layers are 0..{n - 1}")
    return set(layers)
