"""Soft prompts and prompt tuning (Lester, Al-Rfou & Constant 2021, "The Power of Scale for
Parameter-Efficient Prompt Tuning").

A *soft prompt* is a handful of vectors that sit among the input's token embeddings like extra
words, but are free to take any value: *virtual tokens*. The backbone stays frozen; only the
virtual tokens train. :class:`PromptTuning` puts ``n`` of them before the input,

    [v_1 … v_n] [Review: a gorgeous, witty film … Sentiment:] → " positive"

and starts them from the embeddings of a text, of tokens sampled from the vocabulary, or at
random (:class:`PromptTuningInit`, as in PEFT). The answer is read through the cloze and a
verbalizer (``ClozeClassifier.slot_logits`` with ``inputs_embeds``), or by a small
classification head on the hidden state in the answer slot (:class:`Readout`).

:class:`SoftPromptClassifier` holds what every soft-prompt method shares (the frozen backbone, the
injection of virtual tokens into the embeddings, the readout); P-tuning builds on it in
:mod:`prompt_learning.p_tuning`. :func:`nearest_tokens` shows which vocabulary tokens the
learned vectors lie closest to.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import Enum

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .backbones import Backbone
from .cloze import ClozeClassifier, positions_from_mask
from .templates import Template
from .verbalizers import Verbalizer


class SoftPromptError(ValueError):
    """A soft-prompt set-up that cannot work; the message names the fix."""


class Readout(str, Enum):
    """How class scores are read from the frozen backbone."""

    VERBALIZER = "verbalizer"  # the LM head's logits for the label words in the answer slot (cloze)
    HEAD = "head"  # a new linear layer on the hidden state in the answer slot


class PromptTuningInit(str, Enum):
    """Where the virtual tokens start (the names of PEFT's ``PromptTuningInit``)."""

    TEXT = "TEXT"  # the embeddings of ``init_text``'s tokens, repeated to fill the prompt
    SAMPLE_VOCAB = "SAMPLE_VOCAB"  # the embeddings of tokens drawn from the vocabulary
    RANDOM = "RANDOM"  # normal noise at the scale of the vocabulary's embeddings


def _enum(cls: type[Enum], value, field: str) -> Enum:
    """``value`` as a member of ``cls`` (names or values accepted, any case), or a clear error."""
    if isinstance(value, cls):
        return value
    for member in cls:
        if str(value).lower() in (member.name.lower(), str(member.value).lower()):
            return member
    raise SoftPromptError(f"unknown {field} {value!r}; choose one of {[m.value for m in cls]}")


@dataclass
class PromptTuningConfig:
    num_virtual_tokens: int = 20  # n trainable vectors placed before the input
    init: PromptTuningInit | str = PromptTuningInit.TEXT  # where they start
    init_text: str | None = "Classify the sentiment of this movie review."  # TEXT: tokens to start from
    vocab_sample_size: int = 5000  # SAMPLE_VOCAB: draw from the first ids (BPE ids follow merge frequency)
    readout: Readout | str = Readout.VERBALIZER  # label words (cloze) or a classification head
    seed: int = 0  # for SAMPLE_VOCAB / RANDOM and the head's initial weights

    def __post_init__(self):
        n = self.num_virtual_tokens
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise SoftPromptError(
                f"num_virtual_tokens must be a positive integer, got {self.num_virtual_tokens!r}: "
                "a soft prompt needs at least one virtual token (Lester et al. use 1 to 150)")
        self.num_virtual_tokens = int(n)
        self.init = _enum(PromptTuningInit, self.init, "init")
        self.readout = _enum(Readout, self.readout, "readout")
        if self.init == PromptTuningInit.TEXT and not (self.init_text or "").strip():
            raise SoftPromptError("init='TEXT' needs init_text (e.g. 'Classify the sentiment of this "
                                  "review.'); or choose init='SAMPLE_VOCAB' or 'RANDOM'")

    def to_dict(self) -> dict:
        return {k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(self).items()}


def freeze(model: nn.Module) -> None:
    """Turn off gradients for every weight of ``model`` (the backbone stays fixed)."""
    for p in model.parameters():
        p.requires_grad_(False)


class SoftPromptClassifier(nn.Module):
    """What every soft-prompt method shares: a frozen backbone that reads virtual tokens.

    Subclasses provide :meth:`prompt_embeddings` ``(n, H)`` and :meth:`encode`, which returns the
    token ids with placeholders where the virtual tokens go and ``virtual_index (B, T)``: which
    virtual token stands at each position (-1 for a real token). The frozen backbone stays in eval
    mode (no dropout) even while the prompt trains: it is a fixed function of its input.
    """

    def __init__(self, backbone: Backbone, template: Template, verbalizer: Verbalizer | Sequence[str],
                 readout: Readout, max_length: int, seed: int = 0):
        super().__init__()
        self.backbone = backbone
        self.model = backbone.model
        self.tokenizer = backbone.tokenizer
        self.template = template
        self.readout = readout
        self.causal = backbone.kind == "causal-lm"
        self.max_length = max_length
        freeze(self.model)
        if readout == Readout.VERBALIZER:
            if not isinstance(verbalizer, Verbalizer):
                raise SoftPromptError("the verbalizer readout needs a Verbalizer (label words); pass one, or "
                                      "set readout='head' to train a classification head on the class names")
            self.cloze = ClozeClassifier(backbone, template, verbalizer, max_length)  # validates words, slot
            self.verbalizer = verbalizer
            self.labels = list(verbalizer.labels)
        else:
            self.labels = list(verbalizer.labels if isinstance(verbalizer, Verbalizer) else verbalizer)
            self.verbalizer = verbalizer if isinstance(verbalizer, Verbalizer) else None
            if len(self.labels) < 2:
                raise SoftPromptError(f"a classification head needs at least two classes, got {self.labels}")
            if self.causal and not template.mask_at_end:
                template.encode(self.tokenizer, {}, max_length, causal=True)  # raises the clear error
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                self.head = nn.Linear(self.hidden_size, len(self.labels)).to(self.device)

    # --- what subclasses provide -------------------------------------------------------------
    def prompt_embeddings(self) -> torch.Tensor:
        """The virtual tokens' vectors ``(n, H)``."""
        raise NotImplementedError

    def encode(self, texts) -> dict[str, torch.Tensor]:
        """``input_ids``, ``attention_mask``, ``virtual_index`` ``(B, T)`` and ``mask_pos`` ``(B,)``."""
        raise NotImplementedError

    # --- shared ------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.model.get_input_embeddings().weight.shape[1]

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()  # frozen backbone: no dropout, the same function at train and test time
        return self

    def trainable_parameters(self) -> int:
        """How many numbers train (the prompt, its encoder, the head): never the backbone's."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def hard_columns(self, texts) -> dict[str, list[str]]:
        return {"text": list(texts)} if not isinstance(texts, dict) else texts

    def embed(self, input_ids: torch.Tensor, virtual_index: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``(B, T, H)`` with the virtual tokens' vectors at their positions."""
        words = self.model.get_input_embeddings()(input_ids)  # (B, T, H)
        prompts = self.prompt_embeddings().to(words.dtype)  # (n, H)
        is_virtual = (virtual_index >= 0).unsqueeze(-1)  # (B, T, 1)
        return torch.where(is_virtual, prompts[virtual_index.clamp(min=0)], words)  # (B, T, H)

    def word_logits(self, texts) -> torch.Tensor:
        """LM-head logits ``(B, V)`` in the answer slot (verbalizer readout)."""
        if self.readout != Readout.VERBALIZER:
            raise SoftPromptError("word_logits needs readout='verbalizer'; this method reads a head")
        b = self.encode(texts)
        embeds = self.embed(b["input_ids"], b["virtual_index"])  # (B, T, H)
        return self.cloze.slot_logits(b["input_ids"], b["attention_mask"], b["mask_pos"],
                                      inputs_embeds=embeds)  # (B, V)

    def slot_hidden(self, embeds: torch.Tensor, attention_mask: torch.Tensor,
                    mask_pos: torch.Tensor) -> torch.Tensor:
        """Last-layer hidden state ``(B, H)`` in the answer slot (head readout)."""
        base = self.model.base_model
        if self.causal:
            out = base(inputs_embeds=embeds, attention_mask=attention_mask,
                       position_ids=positions_from_mask(attention_mask), use_cache=False)
            return out.last_hidden_state[:, -1]  # (B, H): the position that predicts the answer
        rows = torch.arange(embeds.shape[0], device=embeds.device)
        return base(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state[rows, mask_pos]

    def forward(self, texts) -> torch.Tensor:
        """Class logits ``(B, C)`` for a list of texts (or a dict of text columns)."""
        b = self.encode(texts)
        embeds = self.embed(b["input_ids"], b["virtual_index"])  # (B, T, H)
        if self.readout == Readout.HEAD:
            return self.head(self.slot_hidden(embeds, b["attention_mask"], b["mask_pos"]))  # (B, C)
        words = self.cloze.slot_logits(b["input_ids"], b["attention_mask"], b["mask_pos"],
                                       inputs_embeds=embeds)  # (B, V)
        return self.verbalizer.class_logits(words, self.cloze.label_ids)  # (B, C)

    def _check_positions(self, total: int) -> None:
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and total > limit:
            raise SoftPromptError(f"{total} positions (virtual tokens + max_length) exceed the {limit} "
                                  f"positions of {self.backbone.name!r}: lower max_length or the prompt "
                                  "length")

    def _verbalizer_spec(self) -> dict:
        if self.verbalizer is None:
            return {"labels": self.labels}
        v = self.verbalizer
        return {"labels": self.labels, "words": dict(zip(v.labels, v.words)), "multi_token": v.multi_token}


def verbalizer_from_spec(spec: dict) -> Verbalizer | list[str]:
    """Inverse of ``_verbalizer_spec`` (for checkpoints)."""
    if "words" not in spec:
        return list(spec["labels"])
    return Verbalizer(spec["words"], multi_token=spec.get("multi_token", "error"))


def initial_prompt(embeddings: torch.Tensor, n: int, init: PromptTuningInit,
                   token_ids: list[int] | None = None, vocab_sample_size: int = 5000,
                   exclude: Sequence[int] = (), seed: int = 0) -> torch.Tensor:
    """Starting vectors ``(n, H)`` for a soft prompt, from the vocabulary ``embeddings (V, H)``."""
    gen = torch.Generator().manual_seed(seed)
    if init == PromptTuningInit.TEXT:
        ids = (token_ids * (n // len(token_ids) + 1))[:n]  # repeat the text to fill the prompt (as PEFT)
        return embeddings[torch.tensor(ids, device=embeddings.device)].detach().clone()
    if init == PromptTuningInit.SAMPLE_VOCAB:
        skip = set(exclude)
        pool = torch.tensor([i for i in range(min(vocab_sample_size, embeddings.shape[0])) if i not in skip])
        ids = pool[torch.randint(len(pool), (n,), generator=gen)]
        return embeddings[ids.to(embeddings.device)].detach().clone()
    std = embeddings.detach().float().std().item()
    return (torch.randn(n, embeddings.shape[1], generator=gen) * std).to(embeddings)


class PromptTuning(SoftPromptClassifier):
    """``n`` trainable vectors before the input of a frozen backbone (Lester et al. 2021).

    Args:
        backbone: a causal or masked LM (an encoder works with ``readout='head'``).
        template: the hard part of the prompt, e.g. ``"Review: {text}\\nSentiment: {mask}"``.
        verbalizer: label words (a list of class names suffices for the head readout).
        config: :class:`PromptTuningConfig`.

    >>> pt = PromptTuning(load_backbone("tiny-llama"), "{text} It was {mask}.",
    ...                   Verbalizer({"negative": "bad", "positive": "good"}),
    ...                   PromptTuningConfig(num_virtual_tokens=4, init_text="the movie was"), max_length=64)
    >>> pt(["a fine film"]).shape
    torch.Size([1, 2])

    Input: texts (B). Sequence seen by the backbone: (B, n + T), virtual tokens first (a causal LM's
    position ids count them, so the text starts at position n). Output: class logits (B, C).
    """

    def __init__(self, backbone: Backbone, template: Template | str, verbalizer: Verbalizer | Sequence[str],
                 config: PromptTuningConfig | None = None, max_length: int = 128):
        config = config or PromptTuningConfig()
        template = Template(template) if isinstance(template, str) else template
        super().__init__(backbone, template, verbalizer, config.readout, max_length, seed=config.seed)
        self.config = config
        n = config.num_virtual_tokens
        self._check_positions(n + max_length)
        text_ids = None
        if config.init == PromptTuningInit.TEXT:
            text_ids = self.tokenizer(config.init_text, add_special_tokens=False)["input_ids"]
            if len(text_ids) > n:
                raise SoftPromptError(
                    f"init_text {config.init_text!r} is {len(text_ids)} tokens but the prompt has {n} "
                    f"virtual tokens: shorten the text or set num_virtual_tokens >= {len(text_ids)}")
        vocab = self.model.get_input_embeddings().weight  # (V, H)
        start = initial_prompt(vocab, n, config.init, text_ids, config.vocab_sample_size,
                               self.tokenizer.all_special_ids, config.seed)  # (n, H)
        self.prompt = nn.Parameter(start.float())

    @property
    def num_virtual_tokens(self) -> int:
        return self.config.num_virtual_tokens

    def prompt_embeddings(self) -> torch.Tensor:
        return self.prompt  # (n, H)

    def encode(self, texts) -> dict[str, torch.Tensor]:
        """The template's encoding with ``n`` placeholders in front (left padding stays left of the text)."""
        b = self.template.encode(self.tokenizer, self.hard_columns(texts), self.max_length,
                                 causal=self.causal)
        B, n = b["input_ids"].shape[0], self.num_virtual_tokens
        pad = self.tokenizer.pad_token_id or 0
        virtual = torch.arange(n).expand(B, n)  # (B, n)
        out = {"input_ids": torch.cat([torch.full((B, n), pad), b["input_ids"]], 1),  # (B, n + T)
               "attention_mask": torch.cat([torch.ones(B, n, dtype=torch.long), b["attention_mask"]], 1),
               "virtual_index": torch.cat([virtual, torch.full_like(b["input_ids"], -1)], 1),
               "mask_pos": b["mask_pos"] + n}  # (B,)
        return {k: v.to(self.device) for k, v in out.items()}

    def checkpoint_spec(self) -> dict:
        return {"template": self.template.pattern, "verbalizer": self._verbalizer_spec(),
                "config": self.config.to_dict(), "max_length": self.max_length}

    @classmethod
    def from_checkpoint_spec(cls, backbone: Backbone, spec: dict) -> PromptTuning:
        return cls(backbone, spec["template"], verbalizer_from_spec(spec["verbalizer"]),
                   PromptTuningConfig(**spec["config"]), max_length=spec["max_length"])


@torch.no_grad()
def nearest_tokens(prompts: torch.Tensor, embeddings: torch.Tensor,
                   k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities and ids ``(n, k)`` of the ``k`` vocabulary vectors nearest each prompt vector."""
    if k < 1:
        raise SoftPromptError(f"k must be at least 1, got {k}")
    sims = F.normalize(prompts.float(), dim=-1) @ F.normalize(embeddings.float(), dim=-1).T  # (n, V)
    return sims.topk(k, dim=-1)


def nearest_token_table(method: SoftPromptClassifier, k: int = 5,
                        prompts: torch.Tensor | None = None) -> pd.DataFrame:
    """One row per virtual token: its ``k`` nearest vocabulary tokens as ``'token (cosine)'``.

    ``prompts`` (n, H) defaults to the method's current prompt; pass a saved copy to look back.
    """
    prompts = method.prompt_embeddings() if prompts is None else prompts
    vocab = method.model.get_input_embeddings().weight  # (V, H)
    sims, ids = nearest_tokens(prompts, vocab, k)
    tok = method.tokenizer
    cells = [[f"{tok.decode([int(i)])!r} ({s:.2f})" for s, i in zip(row_s.tolist(), row_i.tolist())]
             for row_s, row_i in zip(sims, ids)]
    return pd.DataFrame(cells, index=[f"P{i}" for i in range(len(cells))],
                        columns=[f"nearest {r + 1}" for r in range(k)])
