"""P-tuning (Liu et al. 2021, "GPT Understands, Too"): virtual tokens made by a prompt encoder,
mixed with anchor words, at positions the template chooses.

A P-tuning template marks each virtual token with ``[Pi]`` (:class:`~prompt_learning.templates.Template`
parses the markers); the words around them are *anchors* (hard tokens the model reads as usual)::

    "[P0][P1] {text} [P2] It was {mask}."

The virtual tokens' vectors are not free parameters but the output of a small *prompt
encoder* — a bidirectional LSTM followed by an MLP, as in the paper, or an MLP alone — run over
``n`` trainable input vectors: ``h_0..h_{n-1} = MLP(BiLSTM(e_0..e_{n-1}))``. The encoder ties
the virtual tokens to each other, which the paper found to make training faster and steadier.
Only the encoder's parameters train; the backbone stays frozen.

For inference the encoder can be run once and replaced by its output, a plain prompt
(:meth:`PTuning.freeze_encoder`); or kept and saved with :mod:`prompt_learning.checkpoints`, so
that training can resume. The encoder's layers have the names and shapes of PEFT's
``PromptEncoder``, so weights move between the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

from .backbones import Backbone
from .method import PromptLearningConfig, enum_value, seeded
from .positions import check_positions
from .precision import fp32_on_cpu
from .soft_prompts import (
    PromptTuningInit,
    Readout,
    SoftPromptClassifier,
    SoftPromptError,
    initial_prompt,
)
from .templates import Template, virtual_tokens
from .verbalizers import Verbalizer

__all__ = ["PTuning", "PTuningConfig", "PromptEncoder", "PromptEncoderType", "virtual_tokens"]


class PromptEncoderType(str, Enum):
    """How the virtual tokens are made."""

    LSTM = "LSTM"  # bidirectional LSTM + 2-layer MLP over trainable inputs (the paper)
    MLP = "MLP"  # a 3-layer MLP over trainable inputs (PEFT's recommended variant)
    NONE = "NONE"  # no encoder: free vectors (prompt tuning at the template's positions)


@dataclass
class PTuningConfig(PromptLearningConfig):
    num_virtual_tokens: int | None = None  # None: as many as the template marks ([P0] … [Pn-1]); else checked
    encoder: PromptEncoderType | str = PromptEncoderType.LSTM  # what makes the virtual tokens
    encoder_hidden_size: int | None = None  # default: H/2 per LSTM direction (the paper), H for the MLP
    encoder_num_layers: int = 2  # LSTM layers (the MLP always has three linear layers, as in PEFT)
    encoder_dropout: float = 0.0  # between LSTM layers
    readout: Readout | str = Readout.VERBALIZER  # label words (cloze) or a classification head

    def __post_init__(self):
        super().__post_init__()
        self.encoder = enum_value(PromptEncoderType, self.encoder, "prompt encoder type")
        self.readout = enum_value(Readout, self.readout, "readout")
        if self.encoder_hidden_size is not None and self.encoder_hidden_size < 1:
            raise SoftPromptError(f"encoder_hidden_size must be positive, got {self.encoder_hidden_size}")
        if self.encoder_num_layers < 1:
            raise SoftPromptError(f"encoder_num_layers must be at least 1, got {self.encoder_num_layers}")


class PromptEncoder(nn.Module):
    """Makes ``n`` virtual-token vectors from ``n`` trainable inputs (P-tuning's reparameterisation).

    Layer names and shapes follow PEFT's ``PromptEncoder`` (``embedding``, ``lstm_head``,
    ``mlp_head``). Input: none (the inputs are the ``embedding`` weights). Output: ``(n, token_dim)``.
    """

    def __init__(
        self,
        num_virtual_tokens: int,
        token_dim: int,
        encoder_type: PromptEncoderType,
        hidden_size: int,
        num_layers: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.encoder_type = encoder_type
        self.embedding = nn.Embedding(num_virtual_tokens, token_dim)
        h = hidden_size
        if encoder_type == PromptEncoderType.LSTM:
            self.lstm_head = nn.LSTM(
                token_dim, h, num_layers=num_layers, dropout=dropout, bidirectional=True, batch_first=True
            )
            self.mlp_head = nn.Sequential(nn.Linear(2 * h, 2 * h), nn.ReLU(), nn.Linear(2 * h, token_dim))
        elif encoder_type == PromptEncoderType.MLP:
            self.mlp_head = nn.Sequential(
                nn.Linear(token_dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, token_dim)
            )
        else:
            raise SoftPromptError(f"unknown prompt encoder type {encoder_type!r}; choose 'LSTM' or 'MLP'")

    def forward(self) -> torch.Tensor:
        x = self.embedding.weight.unsqueeze(0)  # (1, n, token_dim)
        if self.encoder_type == PromptEncoderType.LSTM:
            with fp32_on_cpu(x.device):  # a CPU rule (prompt_learning.precision)
                x = self.lstm_head(x)[0]  # (1, n, 2h): both directions see every virtual token
        return self.mlp_head(x)[0]  # (n, token_dim)


class PTuning(SoftPromptClassifier):
    """Virtual tokens from a prompt encoder, among anchor words, where the template puts them.

    Args:
        backbone: a causal or masked LM (an encoder works with ``readout='head'``).
        template: a :class:`~prompt_learning.templates.Template` with ``[Pi]`` markers, or its pattern.
        verbalizer: label words (a list of class names suffices for the head readout).
        config: :class:`PTuningConfig`.

    >>> pt = PTuning(load_backbone("tiny-llama"), "[P0] {text} [P1] It was {mask}.",
    ...              Verbalizer({"negative": "bad", "positive": "good"}), PTuningConfig(encoder="MLP", max_length=64))
    >>> pt(["a fine film"]).shape
    torch.Size([1, 2])

    Input: texts (B). Sequence seen by the backbone: (B, T), virtual tokens inside, counted by the
    position ids; ``T ≤ max_length + n`` (the virtual tokens come on top, as in every method).
    Output: class logits (B, C).
    """

    config_class = PTuningConfig

    def __init__(
        self,
        backbone: Backbone,
        template: Template | str,
        verbalizer: Verbalizer | Sequence[str],
        config: PTuningConfig | None = None,
    ):
        config = config if config is not None else PTuningConfig()
        template = Template(template) if isinstance(template, str) else template
        n = template.num_virtual_tokens
        if n == 0:
            raise SoftPromptError(
                f"P-tuning template {template.pattern!r} has no virtual tokens: mark them [P0], "
                "[P1], … (e.g. '[P0][P1] {text} [P2] It was {mask}.'), or use a hard "
                "Template with ClozeClassifier or PromptTuning"
            )
        if config.num_virtual_tokens not in (None, n):
            raise SoftPromptError(
                f"config.num_virtual_tokens={config.num_virtual_tokens} but the template marks "
                f"{n} virtual tokens; leave it None or mark [P0] … [P{config.num_virtual_tokens - 1}]"
            )
        super().__init__(backbone, template, verbalizer, config)
        # max_length counts the text and the hard template; the n virtual tokens come on top, as for
        # every method (PromptLearningConfig) and as PEFT prepends them
        check_positions(self.model, config.max_length, n)
        self.encode({s: [""] for s in template.text_slots})  # fits in max_length? (before any compute)
        H = self.hidden_size
        self.register_parameter("prompt", None)
        self.encoder: PromptEncoder | None = None
        with seeded(config.seed):
            if config.encoder == PromptEncoderType.NONE:
                vocab = self.model.get_input_embeddings().weight  # (V, H)
                start = initial_prompt(
                    vocab,
                    n,
                    PromptTuningInit.SAMPLE_VOCAB,
                    exclude=self.tokenizer.all_special_ids,
                    seed=config.seed,
                )  # (n, H) fp32
                self.prompt = nn.Parameter(start)
            else:
                lstm = config.encoder == PromptEncoderType.LSTM
                hidden = config.encoder_hidden_size or (H // 2 if lstm else H)
                self.encoder = PromptEncoder(
                    n, H, config.encoder, hidden, config.encoder_num_layers, config.encoder_dropout
                ).to(self.device)  # fp32
        self.encoder_frozen = False

    @property
    def num_virtual_tokens(self) -> int:
        return self.template.num_virtual_tokens

    def prompt_embeddings(self) -> torch.Tensor:
        return self.prompt if self.encoder is None else self.encoder()  # (n, H)

    def encode(self, texts) -> dict[str, torch.Tensor]:
        columns = texts if isinstance(texts, dict) else {"text": list(texts)}
        b = self.template.encode(
            self.tokenizer,
            columns,
            self.max_length + self.num_virtual_tokens,
            causal=self.causal,
            placeholder=self.tokenizer.pad_token_id or 0,
        )
        return {k: v.to(self.device) for k, v in b.items()}

    @torch.no_grad()
    def freeze_encoder(self) -> PTuning:
        """Replace the prompt encoder by the prompt it computes now: the same outputs, no encoder.

        The result is a plain ``(n, H)`` prompt, as PEFT stores for inference; it can still train
        further as free vectors. Does nothing when already frozen.
        """
        if self.config.encoder == PromptEncoderType.NONE:
            raise SoftPromptError(
                "this PTuning has no prompt encoder (encoder='NONE'): its prompt is already plain"
            )
        if self.encoder is not None:
            self.prompt = nn.Parameter(self.encoder().detach().clone().float())  # (n, H)
            self.encoder = None
            self.encoder_frozen = True
        return self

    def checkpoint_spec(self) -> dict:
        return {
            "template": self.template.pattern,
            "verbalizer": self._verbalizer_spec(),
            "config": self.config.to_dict(),
            "encoder_frozen": self.encoder_frozen,
        }

    def prepare_load(self, spec: dict) -> None:
        if spec.get("encoder_frozen"):
            self.freeze_encoder()
