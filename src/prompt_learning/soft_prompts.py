"""Soft prompts and prompt tuning (Lester, Al-Rfou & Constant 2021, "The Power of Scale for
Parameter-Efficient Prompt Tuning").

A *soft prompt* is a handful of vectors that sit among the input's token embeddings like extra
words, but are free to take any value: *virtual tokens*. The backbone stays frozen; only the
virtual tokens train. :class:`PromptTuning` puts ``n`` of them before the input,

    [v_1 … v_n] [Review: a gorgeous, witty film … Sentiment:] → " positive"

and starts them from the embeddings of a text, of tokens sampled from the vocabulary, or at
random (:class:`PromptTuningInit`, as in PEFT). The answer is read through the cloze and a
verbalizer (:func:`~prompt_learning.readout.answer_logits` with ``inputs_embeds``), or by a small
classification head on the hidden state in the answer slot (:class:`Readout`). Built without a
template and verbalizer, the same prompt serves generation (:meth:`PromptTuning.lm_loss`,
:meth:`PromptTuning.generate`): the input-level baseline that chapter 7 compares prefix tuning with.

Lester et al. used T5 (v1.1, LM-adapted), no hard template, and read the answer as generated label
text; reading it through a cloze template and label words, as here, is an adaptation.

:class:`SoftPromptClassifier` holds what every soft-prompt method shares (the frozen backbone, the
injection of virtual tokens into the embeddings, the readout); P-tuning builds on it in
:mod:`prompt_learning.p_tuning`. :func:`nearest_tokens` shows which vocabulary tokens the
learned vectors lie closest to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .backbones import Backbone
from .method import InputError, PromptLearningConfig, PromptMethod, check_inputs, enum_value, seeded
from .positions import check_positions, position_ids
from .precision import to_dtype_of
from .readout import answer_logits, check_lm_backbone
from .templates import Template
from .verbalizers import Verbalizer


class SoftPromptError(InputError):
    """A soft-prompt set-up that cannot work; the message names the fix."""


class Readout(str, Enum):
    """How class scores are read from the frozen backbone."""

    VERBALIZER = "verbalizer"  # the LM head's logits for the label words in the answer slot (cloze)
    HEAD = "head"  # a new linear layer on the hidden state in the answer slot


class PromptTuningInit(str, Enum):
    """Where the virtual tokens start (the names of PEFT's ``PromptTuningInit``)."""

    TEXT = "TEXT"  # the embeddings of ``init_text``'s tokens, repeated to fill the prompt (as PEFT)
    SAMPLE_VOCAB = "SAMPLE_VOCAB"  # the embeddings of tokens drawn from the vocabulary
    RANDOM = "RANDOM"  # normal noise at the scale of the vocabulary's embeddings


@dataclass
class PromptTuningConfig(PromptLearningConfig):
    num_virtual_tokens: int = 20  # n trainable vectors placed before the input
    init: PromptTuningInit | str = PromptTuningInit.TEXT  # where they start
    init_text: str | None = "Classify the sentiment of this movie review."  # TEXT: tokens to start from
    vocab_sample_size: int = 5000  # SAMPLE_VOCAB: draw from the first ids (BPE ids follow merge frequency)
    readout: Readout | str = Readout.VERBALIZER  # label words (cloze) or a classification head

    def __post_init__(self):
        super().__post_init__()
        if self.num_virtual_tokens < 1:
            raise SoftPromptError(
                f"num_virtual_tokens must be a positive integer, got {self.num_virtual_tokens!r}: "
                "a soft prompt needs at least one virtual token (Lester et al. use 1 to 150)"
            )
        self.num_virtual_tokens = int(self.num_virtual_tokens)
        self.init = enum_value(PromptTuningInit, self.init, "init")
        self.readout = enum_value(Readout, self.readout, "readout")
        if self.init == PromptTuningInit.TEXT and not (self.init_text or "").strip():
            raise SoftPromptError(
                "init='TEXT' needs init_text (e.g. 'Classify the sentiment of this "
                "review.'); or choose init='SAMPLE_VOCAB' or 'RANDOM'"
            )


def freeze(model: nn.Module) -> None:
    """Turn off gradients for every weight of ``model`` (the backbone stays fixed)."""
    model.requires_grad_(False)


def _labels(verbalizer: Verbalizer | Sequence[str] | None) -> list[str]:
    if verbalizer is None:
        return []
    return list(verbalizer.labels if isinstance(verbalizer, Verbalizer) else verbalizer)


class SoftPromptClassifier(PromptMethod):
    """What every soft-prompt method shares: a frozen backbone that reads virtual tokens.

    Subclasses provide :meth:`prompt_embeddings` ``(n, H)`` and :meth:`encode`, which returns the
    token ids with placeholders where the virtual tokens go and ``virtual_index (B, T)``: which
    virtual token stands at each position (-1 for a real token).
    """

    @classmethod
    def from_checkpoint_spec(cls, backbone: Backbone, spec: dict) -> SoftPromptClassifier:
        """Rebuild from ``checkpoint_spec()`` (prompt tuning and P-tuning alike)."""
        template, verbalizer = spec["template"], verbalizer_from_spec(spec["verbalizer"])
        return cls(backbone, template, verbalizer, cls.config_class.from_dict(spec["config"]))

    def __init__(
        self,
        backbone: Backbone,
        template: Template | None,
        verbalizer: Verbalizer | Sequence[str] | None,
        config: PromptLearningConfig,
    ):
        super().__init__(backbone, config, _labels(verbalizer))
        freeze(self.model)
        self.template = template
        self.readout = getattr(config, "readout", Readout.VERBALIZER)
        self.causal = backbone.kind == "causal-lm"
        self.verbalizer = verbalizer if isinstance(verbalizer, Verbalizer) else None
        if template is None:  # generation: no classes
            return
        self.text_columns = template.text_slots
        if self.causal:
            template.check_causal()  # before any compute
        elif backbone.kind == "masked-lm" and self.tokenizer.mask_token_id is None:
            raise SoftPromptError(f"{backbone.name!r} has no mask token")
        if self.readout == Readout.VERBALIZER:
            if self.verbalizer is None:
                raise SoftPromptError(
                    "the verbalizer readout needs a Verbalizer (label words); pass one, or "
                    "set readout='head' to train a classification head on the class names"
                )
            check_lm_backbone(
                backbone, template, "the verbalizer readout", SoftPromptError, True, "set readout='head'"
            )
            self.label_ids = self.verbalizer.token_ids(self.tokenizer, space_before=template.mask_space)
        else:
            if len(self.labels) < 2:
                raise SoftPromptError(f"a classification head needs at least two classes, got {self.labels}")
            with seeded(config.seed):
                self.head = nn.Linear(self.hidden_size, len(self.labels)).to(self.device)  # fp32

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
    def max_length(self) -> int:
        return self.config.max_length

    def embed(self, input_ids: torch.Tensor, virtual_index: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``(B, T, H)`` with the virtual tokens' vectors at their positions."""
        words = self.model.get_input_embeddings()(input_ids)  # (B, T, H)
        prompts = self.prompt_embeddings().to(words.dtype)  # (n, H): fp32 → the backbone's dtype
        is_virtual = (virtual_index >= 0).unsqueeze(-1)  # (B, T, 1)
        return torch.where(is_virtual, prompts[virtual_index.clamp(min=0)], words)  # (B, T, H)

    def _classify_columns(self, texts) -> dict[str, list[str]]:
        if self.template is None:
            raise SoftPromptError(
                f"this {type(self).__name__} was built for generation (no template): pass a "
                "template and verbalizer to classify, or call generate()/lm_loss()"
            )
        return check_inputs(texts, self.text_columns)

    def vocab_logits(self, b: dict[str, torch.Tensor], embeds: torch.Tensor) -> torch.Tensor:
        """LM-head logits ``(B, V)`` in the answer slot, the prompts among ``embeds``."""
        return answer_logits(self.model, self.causal, None, b["attention_mask"], b["mask_pos"], embeds)

    def word_logits(self, texts) -> torch.Tensor:
        """LM-head logits ``(B, V)`` in the answer slot (verbalizer readout)."""
        if self.readout != Readout.VERBALIZER:
            raise SoftPromptError("word_logits needs readout='verbalizer'; this method reads a head")
        b = self.encode(self._classify_columns(texts))
        return self.vocab_logits(b, self.embed(b["input_ids"], b["virtual_index"]))  # (B, V)

    def slot_hidden(
        self, embeds: torch.Tensor, attention_mask: torch.Tensor, mask_pos: torch.Tensor
    ) -> torch.Tensor:
        """Last-layer hidden state ``(B, H)`` in the answer slot (head readout)."""
        base = self.model.base_model
        if self.causal:
            out = base(
                inputs_embeds=embeds,
                attention_mask=attention_mask,
                position_ids=position_ids(attention_mask),
                use_cache=False,
            )
            return out.last_hidden_state[:, -1]  # (B, H): the position that predicts the answer
        rows = torch.arange(embeds.shape[0], device=embeds.device)
        return base(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state[rows, mask_pos]

    def forward(self, texts) -> torch.Tensor:
        return self.logits(self._classify_columns(texts))

    def logits(self, columns: dict[str, list[str]]) -> torch.Tensor:
        """Class logits ``(B, C)``."""
        b = self.encode(columns)
        embeds = self.embed(b["input_ids"], b["virtual_index"])  # (B, T, H)
        if self.readout == Readout.HEAD:
            hidden = self.slot_hidden(embeds, b["attention_mask"], b["mask_pos"])  # (B, H)
            return self.head(to_dtype_of(hidden, self.head))  # (B, C)
        return self.verbalizer.class_logits(self.vocab_logits(b, embeds), self.label_ids)  # (B, C)

    def _verbalizer_spec(self) -> dict:
        if self.verbalizer is None:
            return {"labels": self.labels}
        return {"labels": self.labels, **self.verbalizer.spec()}


def verbalizer_from_spec(spec: dict) -> Verbalizer | list[str] | None:
    """Inverse of ``_verbalizer_spec`` (for checkpoints)."""
    if "words" not in spec:
        return list(spec["labels"]) or None
    return Verbalizer.from_spec(spec)


def initial_prompt(
    embeddings: torch.Tensor,
    n: int,
    init: PromptTuningInit,
    token_ids: list[int] | None = None,
    vocab_sample_size: int = 5000,
    exclude: Sequence[int] = (),
    seed: int = 0,
) -> torch.Tensor:
    """Starting vectors ``(n, H)`` for a soft prompt (fp32), from the vocabulary ``embeddings (V, H)``."""
    gen = torch.Generator().manual_seed(seed)
    if init == PromptTuningInit.TEXT:
        ids = (token_ids * (n // len(token_ids) + 1))[:n]  # repeat the text to fill the prompt (as PEFT)
        return embeddings[torch.tensor(ids, device=embeddings.device)].detach().clone().float()
    if init == PromptTuningInit.SAMPLE_VOCAB:
        skip = set(exclude)
        pool = torch.tensor([i for i in range(min(vocab_sample_size, embeddings.shape[0])) if i not in skip])
        ids = pool[torch.randint(len(pool), (n,), generator=gen)]
        return embeddings[ids.to(embeddings.device)].detach().clone().float()
    std = embeddings.detach().float().std().item()
    return (torch.randn(n, embeddings.shape[1], generator=gen) * std).to(embeddings.device)


class PromptTuning(SoftPromptClassifier):
    """``n`` trainable vectors before the input of a frozen backbone (Lester et al. 2021).

    Args:
        backbone: a causal or masked LM (an encoder works with ``readout='head'``).
        template: the hard part of the prompt, e.g. ``"Review: {text}\\nSentiment: {mask}"``.
        verbalizer: label words (a list of class names suffices for the head readout).
        config: :class:`PromptTuningConfig`.

    With ``template=None`` and ``verbalizer=None`` the prompt is for generation: :meth:`lm_loss` and
    :meth:`generate`.

    >>> pt = PromptTuning(load_backbone("tiny-llama"), "{text} It was {mask}.",
    ...                   Verbalizer({"negative": "bad", "positive": "good"}),
    ...                   PromptTuningConfig(num_virtual_tokens=4, init_text="the movie was", max_length=64))
    >>> pt(["a fine film"]).shape
    torch.Size([1, 2])

    Input: texts (B). Sequence seen by the backbone: (B, n + T), virtual tokens first (a causal LM's
    position ids count them, so the text starts at position n). Output: class logits (B, C).
    """

    config_class = PromptTuningConfig

    def __init__(
        self,
        backbone: Backbone,
        template: Template | str | None = None,
        verbalizer: Verbalizer | Sequence[str] | None = None,
        config: PromptTuningConfig | None = None,
    ):
        config = config if config is not None else PromptTuningConfig()
        if (template is None) != (verbalizer is None):
            raise SoftPromptError(
                "classification needs both a template and a verbalizer (or class names); "
                "pass neither to train the prompt for generation"
            )
        template = Template(template) if isinstance(template, str) else template
        if template is not None and template.num_virtual_tokens:
            raise SoftPromptError(
                f"{template!r} marks virtual tokens among its words: that is P-tuning "
                "(use PTuning); prompt tuning puts num_virtual_tokens before a hard template"
            )
        if template is None and backbone.kind != "causal-lm":
            raise SoftPromptError(
                f"generation with a soft prompt needs a causal LM; {backbone.name!r} is a {backbone.kind}"
            )
        super().__init__(backbone, template, verbalizer, config)
        n = config.num_virtual_tokens
        check_positions(self.model, config.max_length if template is not None else 0, n)
        text_ids = None
        if config.init == PromptTuningInit.TEXT:
            text_ids = self.tokenizer(config.init_text, add_special_tokens=False)["input_ids"]
            if len(text_ids) > n:
                raise SoftPromptError(
                    f"init_text {config.init_text!r} is {len(text_ids)} tokens but the prompt has {n} "
                    f"virtual tokens: shorten the text or set num_virtual_tokens >= {len(text_ids)}"
                )
        vocab = self.model.get_input_embeddings().weight  # (V, H)
        start = initial_prompt(
            vocab,
            n,
            config.init,
            text_ids,
            config.vocab_sample_size,
            self.tokenizer.all_special_ids,
            config.seed,
        )  # (n, H) fp32
        self.prompt = nn.Parameter(start)

    @property
    def num_virtual_tokens(self) -> int:
        return self.config.num_virtual_tokens

    def prompt_embeddings(self) -> torch.Tensor:
        return self.prompt  # (n, H)

    def encode(self, texts) -> dict[str, torch.Tensor]:
        """The template's encoding with ``n`` placeholders in front (left padding stays left of the text)."""
        columns = texts if isinstance(texts, dict) else {"text": list(texts)}
        b = self.template.encode(self.tokenizer, columns, self.max_length, causal=self.causal)
        B, n = b["input_ids"].shape[0], self.num_virtual_tokens
        pad = self.tokenizer.pad_token_id or 0
        virtual = torch.arange(n).expand(B, n)  # (B, n)
        out = {
            "input_ids": torch.cat([torch.full((B, n), pad), b["input_ids"]], 1),  # (B, n + T)
            "attention_mask": torch.cat([torch.ones(B, n, dtype=torch.long), b["attention_mask"]], 1),
            "virtual_index": torch.cat([virtual, b["virtual_index"]], 1),
            "mask_pos": b["mask_pos"] + n,
        }  # (B,)
        return {k: v.to(self.device) for k, v in out.items()}

    # --- generation (no template) -------------------------------------------------------------
    def lm_loss(self, sources: list[str], targets: list[str]) -> torch.Tensor:
        """Teacher-forced cross-entropy of ``targets`` given the soft prompt and ``sources``."""
        from .text_generation import encode_pairs, lm_loss

        sources, targets = check_inputs(sources)["text"], check_inputs(targets)["text"]
        batch = encode_pairs(self.tokenizer, sources, targets, seq2seq=False, device=self.device)
        return lm_loss(self.model, batch, soft_prompt=self.prompt)

    def generate(self, sources: list[str], max_new_tokens: int = 24, newline: bool = True) -> list[str]:
        """Greedy continuations of ``sources`` after the soft prompt (cut at the first newline)."""
        from .text_generation import decode, encode_pairs, greedy_generate, stop_token_ids

        b = encode_pairs(
            self.tokenizer, check_inputs(sources)["text"], None, seq2seq=False, device=self.device
        )
        ids = greedy_generate(
            self.model,
            b["input_ids"],
            b["attention_mask"],
            soft_prompt=self.prompt,
            max_new_tokens=max_new_tokens,
            stop_ids=stop_token_ids(self.tokenizer, newline),
            pad_id=self.tokenizer.pad_token_id,
        )
        return decode(self.tokenizer, ids, newline)

    def checkpoint_spec(self) -> dict:
        return {
            "template": self.template.pattern if self.template is not None else None,
            "verbalizer": self._verbalizer_spec(),
            "config": self.config.to_dict(),
        }


@torch.no_grad()
def nearest_tokens(
    prompts: torch.Tensor, embeddings: torch.Tensor, k: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities and ids ``(n, k)`` of the ``k`` vocabulary vectors nearest each prompt vector."""
    if k < 1:
        raise SoftPromptError(f"k must be at least 1, got {k}")
    sims = F.normalize(prompts.float(), dim=-1) @ F.normalize(embeddings.float(), dim=-1).T  # (n, V)
    return sims.topk(k, dim=-1)


def nearest_token_table(
    method: SoftPromptClassifier, k: int = 5, prompts: torch.Tensor | None = None
) -> pd.DataFrame:
    """One row per virtual token: its ``k`` nearest vocabulary tokens as ``'token (cosine)'``.

    ``prompts`` (n, H) defaults to the method's current prompt; pass a saved copy to look back.
    """
    prompts = method.prompt_embeddings() if prompts is None else prompts
    vocab = method.model.get_input_embeddings().weight  # (V, H)
    sims, ids = nearest_tokens(prompts, vocab, k)
    tok = method.tokenizer
    cells = [
        [f"{tok.decode([int(i)])!r} ({s:.2f})" for s, i in zip(row_s.tolist(), row_i.tolist())]
        for row_s, row_i in zip(sims, ids)
    ]
    return pd.DataFrame(
        cells, index=[f"P{i}" for i in range(len(cells))], columns=[f"nearest {r + 1}" for r in range(k)]
    )
