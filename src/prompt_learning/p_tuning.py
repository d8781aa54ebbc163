"""P-tuning (Liu et al. 2021, "GPT Understands, Too"): virtual tokens made by a prompt encoder,
mixed with anchor words, at positions the template chooses.

A P-tuning template marks each virtual token with ``[Pi]``; the words around them are *anchors*
(hard tokens the model reads as usual)::

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

import re
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import Enum

import torch
from torch import nn

from .backbones import Backbone
from .soft_prompts import (
    PromptTuningInit, Readout, SoftPromptClassifier, SoftPromptError, _enum, initial_prompt,
    verbalizer_from_spec,
)
from .templates import TEXT_SLOTS, Template, TemplateError, pad_rows, special_tokens_around
from .verbalizers import Verbalizer

VIRTUAL = re.compile(r"\[P(\d+)\]")  # a virtual-token marker in a P-tuning template


def virtual_tokens(n: int, start: int = 0) -> str:
    """``"[P0][P1]…"``: ``n`` virtual-token markers (numbered from ``start``) for a template."""
    return "".join(f"[P{i}]" for i in range(start, start + n))


class PTuningTemplate:
    """A cloze template with virtual-token markers ``[P0]``, ``[P1]``, … among its words.

    The hard part (the template without the markers) must be a valid :class:`~prompt_learning.templates.Template`: one
    ``{mask}``, a ``{text}`` slot. Encoding works piece by piece as ``Template.encode`` does,
    with a placeholder id where each virtual token goes and ``virtual_index`` saying which.
    """

    def __init__(self, pattern: str):
        self.pattern = pattern
        markers = [int(m) for m in VIRTUAL.findall(pattern)]
        if not markers:
            raise SoftPromptError(f"P-tuning template {pattern!r} has no virtual tokens: mark them [P0], "
                                  "[P1], … (e.g. '[P0][P1] {text} [P2] It was {mask}.'), or use a hard "
                                  "Template")
        if sorted(markers) != list(range(len(markers))):
            raise SoftPromptError(f"P-tuning template {pattern!r} has virtual tokens {markers}: number them "
                                  f"[P0] to [P{len(markers) - 1}], each once")
        converted = VIRTUAL.sub(lambda m: "{P" + m.group(1) + "}", pattern)  # markers → format fields
        try:
            parsed = list(string.Formatter().parse(converted))
        except ValueError as e:
            raise TemplateError(f"template {pattern!r} is malformed ({e}); "
                                "write literal braces as {{ and }}") from e
        names = [f for _, f, _, _ in parsed if f is not None]
        if not any(n in ("text", "text_a") for n in names):
            raise SoftPromptError(f"P-tuning template {pattern!r} has no input slot: the virtual tokens are "
                                  "placed around the input, so add {text}, e.g. "
                                  "'[P0][P1] {text} [P2] It was {mask}.'")
        self.hard = Template(VIRTUAL.sub("", pattern))  # validates the mask and text slots
        self.pieces = Template._parse(parsed)
        self.num_virtual_tokens = len(markers)
        self.text_slots = self.hard.text_slots
        kinds = [p.kind for p in self.pieces]
        self.mask_space = self.pieces[kinds.index("mask")].space_before
        self.after_mask = [p.kind for p in self.pieces[kinds.index("mask") + 1:] if _is_virtual(p.kind)]

    def __repr__(self) -> str:
        return f"PTuningTemplate({self.pattern!r})"

    @property
    def anchors(self) -> list[str]:
        """The hard words of the template (everything but slots and virtual tokens)."""
        return [p.value.strip() for p in self.pieces if p.kind == "literal" and p.value.strip()]

    def check_causal(self) -> None:
        if self.after_mask:
            late = [f"[{k}]" for k in self.after_mask]
            raise SoftPromptError(f"{self!r}: virtual token(s) {late} come after {{mask}}; a causal LM reads "
                                  "left to right, so they cannot affect the answer. Move them before {mask}.")
        if not self.hard.mask_at_end:
            self.hard.encode(None, {}, 0, causal=True)  # raises the template's clear error

    def encode(self, tokenizer, texts: dict[str, list[str]], max_length: int, *, causal: bool,
               placeholder: int) -> dict[str, torch.Tensor]:
        """``input_ids``, ``attention_mask``, ``virtual_index`` ``(B, T)`` and ``mask_pos`` ``(B,)``.

        Virtual tokens hold ``placeholder`` in ``input_ids`` and their number in ``virtual_index``
        (-1 elsewhere). They count toward ``max_length``; only the inputs are truncated.
        """
        if causal:
            self.check_causal()
        missing = [s for s in self.text_slots if s not in texts]
        if missing:
            raise TemplateError(f"{self!r} needs input column(s) {missing}")
        n = len(texts[self.text_slots[0]])
        rows = [self._ids(tokenizer, {s: texts[s][i] for s in self.text_slots}, max_length, causal,
                          placeholder) for i in range(n)]
        out = pad_rows([(ids, pos) for ids, _, pos in rows], tokenizer.pad_token_id or 0, left=causal)
        virtual = pad_rows([(v, pos) for _, v, pos in rows], -1, left=causal)["input_ids"]  # (B, T)
        return {**out, "virtual_index": virtual}

    def _ids(self, tok, texts: dict[str, str], max_length: int, causal: bool,
             placeholder: int) -> tuple[list[int], list[int], int]:
        enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
        parts: list[list[int]] = []
        virtual: list[list[int]] = []  # per part: the virtual token number at each id, or -1
        slots: list[int] = []  # indices into parts of the inputs (truncatable)
        mask_part = None
        for p in self.pieces:
            if p.kind == "mask":
                if causal:
                    break
                mask_part = len(parts)
                parts.append([tok.mask_token_id])
            elif _is_virtual(p.kind):
                parts.append([placeholder])
                virtual.append([int(p.kind[1:])])
                continue
            elif p.kind == "literal":
                parts.append(enc(p.value))
            else:
                slots.append(len(parts))
                parts.append(enc((" " if p.space_before else "") + texts[p.kind].strip()))
            virtual.append([-1] * len(parts[-1]))
        head, tail = special_tokens_around(tok)
        tail = [] if causal else tail
        fixed = len(head) + len(tail) + sum(len(parts[i]) for i in range(len(parts)) if i not in slots)
        budget = max_length - fixed
        if budget < len(slots):
            raise TemplateError(f"max_length={max_length} leaves no room for the input after the template "
                                f"{self.pattern!r} and its virtual tokens; raise max_length")
        while sum(len(parts[i]) for i in slots) > budget:  # trim the longest input first
            longest = max(slots, key=lambda i: len(parts[i]))
            parts[longest] = parts[longest][:-1]
            virtual[longest] = virtual[longest][:-1]
        ids = head + [t for part in parts for t in part] + tail
        vidx = [-1] * len(head) + [v for part in virtual for v in part] + [-1] * len(tail)
        pos = len(ids) - 1 if causal else len(head) + sum(len(parts[i]) for i in range(mask_part))
        return ids, vidx, pos


def _is_virtual(kind: str) -> bool:
    return kind not in (*TEXT_SLOTS, "mask", "literal")


class PromptEncoderType(str, Enum):
    """How the virtual tokens are made."""

    LSTM = "LSTM"  # bidirectional LSTM + 2-layer MLP over trainable inputs (the paper)
    MLP = "MLP"  # a 3-layer MLP over trainable inputs (PEFT's recommended variant)
    NONE = "NONE"  # no encoder: free vectors (prompt tuning at the template's positions)


@dataclass
class PTuningConfig:
    encoder: PromptEncoderType | str = PromptEncoderType.LSTM  # what makes the virtual tokens
    encoder_hidden_size: int | None = None  # default: H/2 per LSTM direction (the paper), H for the MLP
    encoder_num_layers: int = 2  # LSTM layers (the MLP always has three linear layers, as in PEFT)
    encoder_dropout: float = 0.0  # between LSTM layers
    readout: Readout | str = Readout.VERBALIZER  # label words (cloze) or a classification head
    seed: int = 0  # initial encoder weights (or free vectors, sampled from the vocabulary) and head

    def __post_init__(self):
        self.encoder = _enum(PromptEncoderType, self.encoder, "prompt encoder type")
        self.readout = _enum(Readout, self.readout, "readout")
        if self.encoder_hidden_size is not None and self.encoder_hidden_size < 1:
            raise SoftPromptError(f"encoder_hidden_size must be positive, got {self.encoder_hidden_size}")
        if self.encoder_num_layers < 1:
            raise SoftPromptError(f"encoder_num_layers must be at least 1, got {self.encoder_num_layers}")

    def to_dict(self) -> dict:
        return {k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(self).items()}


class PromptEncoder(nn.Module):
    """Makes ``n`` virtual-token vectors from ``n`` trainable inputs (P-tuning's reparameterisation).

    Layer names and shapes follow PEFT's ``PromptEncoder`` (``embedding``, ``lstm_head``,
    ``mlp_head``). Input: none (the inputs are the ``embedding`` weights). Output: ``(n, token_dim)``.
    """

    def __init__(self, num_virtual_tokens: int, token_dim: int, encoder_type: PromptEncoderType,
                 hidden_size: int, num_layers: int = 2, dropout: float = 0.0):
        super().__init__()
        self.encoder_type = encoder_type
        self.embedding = nn.Embedding(num_virtual_tokens, token_dim)
        h = hidden_size
        if encoder_type == PromptEncoderType.LSTM:
            self.lstm_head = nn.LSTM(token_dim, h, num_layers=num_layers, dropout=dropout,
                                     bidirectional=True, batch_first=True)
            self.mlp_head = nn.Sequential(nn.Linear(2 * h, 2 * h), nn.ReLU(), nn.Linear(2 * h, token_dim))
        elif encoder_type == PromptEncoderType.MLP:
            self.mlp_head = nn.Sequential(nn.Linear(token_dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                                          nn.Linear(h, token_dim))
        else:
            raise SoftPromptError(f"unknown prompt encoder type {encoder_type!r}; choose 'LSTM' or 'MLP'")

    def forward(self) -> torch.Tensor:
        x = self.embedding.weight.unsqueeze(0)  # (1, n, token_dim)
        if self.encoder_type == PromptEncoderType.LSTM:
            x = self.lstm_head(x)[0]  # (1, n, 2h): both directions see every virtual token
        return self.mlp_head(x)[0]  # (n, token_dim)


class PTuning(SoftPromptClassifier):
    """Virtual tokens from a prompt encoder, among anchor words, where the template puts them.

    Args:
        backbone: a causal or masked LM (an encoder works with ``readout='head'``).
        template: a :class:`PTuningTemplate` or its pattern, e.g. ``"[P0][P1] {text} [P2] It was {mask}."``
        verbalizer: label words (a list of class names suffices for the head readout).
        config: :class:`PTuningConfig`.

    >>> pt = PTuning(load_backbone("tiny-llama"), "[P0] {text} [P1] It was {mask}.",
    ...              Verbalizer({"negative": "bad", "positive": "good"}), PTuningConfig(encoder="MLP"))
    >>> pt(["a fine film"]).shape
    torch.Size([1, 2])

    Input: texts (B). Sequence seen by the backbone: (B, T), virtual tokens inside, counted by the
    position ids. Output: class logits (B, C).
    """

    def __init__(self, backbone: Backbone, template: PTuningTemplate | str,
                 verbalizer: Verbalizer | Sequence[str], config: PTuningConfig | None = None,
                 max_length: int = 128):
        config = config or PTuningConfig()
        template = PTuningTemplate(template) if isinstance(template, str) else template
        if backbone.kind == "causal-lm":
            template.check_causal()
        super().__init__(backbone, template.hard, verbalizer, config.readout, max_length, seed=config.seed)
        self.ptemplate = template
        self.config = config
        if config.readout == Readout.VERBALIZER:  # label words as they follow the mask's own spacing
            self.cloze.label_ids = verbalizer.token_ids(self.tokenizer, space_before=template.mask_space)
        self._check_positions(max_length)
        self.encode({s: [""] for s in template.text_slots})  # fits in max_length? (before any compute)
        n, H = template.num_virtual_tokens, self.hidden_size
        self.register_parameter("prompt", None)
        self.encoder: PromptEncoder | None = None
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            if config.encoder == PromptEncoderType.NONE:
                vocab = self.model.get_input_embeddings().weight  # (V, H)
                start = initial_prompt(vocab, n, PromptTuningInit.SAMPLE_VOCAB,
                                       exclude=self.tokenizer.all_special_ids, seed=config.seed)  # (n, H)
                self.prompt = nn.Parameter(start)
            else:
                lstm = config.encoder == PromptEncoderType.LSTM
                hidden = config.encoder_hidden_size or (H // 2 if lstm else H)
                self.encoder = PromptEncoder(n, H, config.encoder, hidden, config.encoder_num_layers,
                                             config.encoder_dropout).to(self.device)
        self.encoder_frozen = False

    @property
    def num_virtual_tokens(self) -> int:
        return self.ptemplate.num_virtual_tokens

    def prompt_embeddings(self) -> torch.Tensor:
        return self.prompt if self.encoder is None else self.encoder()  # (n, H)

    def encode(self, texts) -> dict[str, torch.Tensor]:
        placeholder = self.tokenizer.pad_token_id or 0
        b = self.ptemplate.encode(self.tokenizer, self.hard_columns(texts), self.max_length,
                                  causal=self.causal, placeholder=placeholder)
        return {k: v.to(self.device) for k, v in b.items()}

    @torch.no_grad()
    def freeze_encoder(self) -> PTuning:
        """Replace the prompt encoder by the prompt it computes now: the same outputs, no encoder.

        The result is a plain ``(n, H)`` prompt, as PEFT stores for inference; it can still train
        further as free vectors. Does nothing when already frozen.
        """
        if self.config.encoder == PromptEncoderType.NONE:
            raise SoftPromptError("this PTuning has no prompt encoder (encoder='NONE'): "
                                  "its prompt is already plain")
        if self.encoder is not None:
            self.prompt = nn.Parameter(self.encoder().detach().clone())  # (n, H)
            self.encoder = None
            self.encoder_frozen = True
        return self

    def checkpoint_spec(self) -> dict:
        return {"template": self.ptemplate.pattern, "verbalizer": self._verbalizer_spec(),
                "config": self.config.to_dict(), "max_length": self.max_length,
                "encoder_frozen": self.encoder_frozen}

    @classmethod
    def from_checkpoint_spec(cls, backbone: Backbone, spec: dict) -> PTuning:
        method = cls(backbone, spec["template"], verbalizer_from_spec(spec["verbalizer"]),
                     PTuningConfig(**spec["config"]), max_length=spec["max_length"])
        return method.freeze_encoder() if spec.get("encoder_frozen") else method
