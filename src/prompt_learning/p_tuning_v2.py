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
:class:`PTuningV2` *is* the book's :class:`~prompt_learning.heads.HeadClassifier` with prompts in the
encoder's layers: the paper's two baselines (a linear head on a frozen encoder, full fine-tuning)
are ``HeadClassifier`` itself. The paper's code keeps the frozen backbone's dropout on while the
prompts train, so ``backbone_dropout=True`` is the default here (every other method turns it off).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .backbones import Backbone
from .heads import HeadClassifier, HeadConfig
from .method import seeded
from .kv_prefix import KVPrefix, PrefixError, enable_prefixes, prefixed_forward
from .prefix_tuning import PrefixEncoder


@dataclass
class PTuningV2Config(HeadConfig):
    num_virtual_tokens: int = 16  # prompt length per layer (the paper: < 20 for classification)
    backbone_dropout: bool = True  # the paper's code keeps the frozen encoder's dropout on
    train_backbone: bool = False  # True: fine-tune the encoder as well as the prompts
    pooling: str | None = "first"  # the first token ([CLS]) as in the paper; "mean": mean of real tokens
    layers: int | Sequence[int] | None = None  # None: every layer; l: the first l; a sequence: those layers
    reparameterize: bool = False  # an MLP as in prefix tuning (off by default in P-tuning v2)
    reparam_hidden: int = 512  # MLP hidden width when reparameterised
    init_std: float = 1.0  # random prompt table N(0, init_std²) (the paper's code: an nn.Embedding)
    prompt_dropout: float = 0.0  # dropout on the prompt keys/values during training
    shift_positions: bool = True  # text starts at position P, as in the paper's code

    def __post_init__(self):
        super().__post_init__()
        if self.num_virtual_tokens < 1:
            raise PrefixError(
                "P-tuning v2 needs num_virtual_tokens ≥ 1; a head without prompts is "
                "HeadClassifier (train_backbone=False: head only; True: full fine-tuning)"
            )
        if isinstance(self.layers, int) and self.layers < 1:
            raise PrefixError(
                f"layers={self.layers} puts the prompts in no layer (yet the text would still be "
                "shifted by the prompt length): choose layers ≥ 1 (1 = shallow, None = every layer)"
            )
        if isinstance(self.layers, range):
            self.layers = list(self.layers)


class PTuningV2(HeadClassifier):
    """Deep prompts + a linear head on the first token: texts → class logits ``(B, C)``.

    >>> m = PTuningV2(load_backbone("tiny-bert"), ["negative", "positive"], PTuningV2Config(4, max_length=64))
    >>> m(["a fine film", "a dull plot"]).shape
    torch.Size([2, 2])
    """

    config_class = PTuningV2Config

    def __init__(
        self, backbone: Backbone, labels: Sequence[str] | int, config: PTuningV2Config | None = None
    ):
        config = config if config is not None else PTuningV2Config()
        if backbone.kind not in ("encoder", "masked-lm"):
            raise PrefixError(
                f"P-tuning v2 classifies with an encoder; {backbone.name!r} is a "
                f"{backbone.kind}. "
                "Use an encoder (e.g. 'minilm-l6'), or PrefixTuning with a template on an LM"
            )
        super().__init__(backbone, labels, config)
        self.slot_of = enable_prefixes(backbone.model)
        all_slots = list(dict.fromkeys(self.slot_of.values()))
        chosen = _chosen_layers(config.layers, len(all_slots))
        self.slots = [s for s in all_slots if s.layer in chosen]
        with seeded(config.seed):
            self.prompts = PrefixEncoder(
                self.slots,
                config.num_virtual_tokens,
                config.reparameterize,
                self.encoder.config.hidden_size,
                config.reparam_hidden,
                config.init_std,
            ).to(self.device)  # fp32
        self.prompt_dropout = nn.Dropout(config.prompt_dropout)

    @property
    def position_offset(self) -> int:
        return self.config.num_virtual_tokens if self.config.shift_positions else 0

    def prefix(self) -> KVPrefix:
        keys, values = self.prompts()
        drop = self.prompt_dropout
        return KVPrefix(
            self.slot_of,
            {s: drop(k) for s, k in keys.items()},
            {s: drop(v) for s, v in values.items()},
            self.config.num_virtual_tokens,
            self.config.shift_positions,
        )

    def hidden_states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return prefixed_forward(self.encoder, self.prefix(), **batch).last_hidden_state  # (B, T, H)


def _chosen_layers(layers: int | Sequence[int] | None, n: int) -> set[int]:
    if layers is None:
        return set(range(n))
    if isinstance(layers, int):
        if not 1 <= layers <= n:
            raise PrefixError(
                f"layers={layers}: the encoder has {n} layers; choose 1..{n} (1 = shallow, "
                f"{n} or None = deep)"
            )
        return set(range(layers))
    bad = [i for i in layers if not 0 <= i < n]
    if bad or not layers:
        raise PrefixError(f"layers {list(layers)}: choose at least one of the encoder's layers 0..{n - 1}")
    return set(layers)
