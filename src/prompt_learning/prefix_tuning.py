"""Prefix tuning (Li & Liang 2021): trainable keys and values at every layer of a frozen LM.

The prefix is a table ``P_θ`` of ``P`` virtual tokens × (a key and a value for every attention
layer). Training it directly is unstable, so Li & Liang (§4.3) reparameterise it: a smaller
table ``P'_θ`` goes through an MLP, ``P_θ[i, :] = MLP_θ(P'_θ[i, :])``; after training only the
MLP's output is kept (:meth:`PrefixTuning.collapse`) and saved. They initialise the prefix with
the activations of real words (§7.2): the backbone reads a word string and its per-layer keys
and values become the prefix; a random prefix is what PEFT starts from.

Where the prefix goes (Li & Liang, Fig. 2): a decoder-only model has one stack of self-attention
layers; an encoder-decoder model (BART) gets a prefix for encoder self-attention, decoder
self-attention and decoder cross-attention. The mechanism is in :mod:`prompt_learning.kv_prefix`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

from .backbones import Backbone
from .kv_prefix import (
    AttentionSlot,
    KVPrefix,
    PrefixError,
    capture_kv,
    check_length,
    enable_prefixes,
)
from .method import PromptLearningConfig, PromptMethod, check_inputs, enum_value, seeded
from .readout import answer_logits
from .templates import Template
from .text_generation import decode, encode_pairs, greedy_generate, lm_loss, stop_token_ids
from .verbalizers import Verbalizer


class PrefixInit(str, Enum):
    """How a prefix starts: the keys and values of real words, or random numbers."""

    WORDS = "words"  # keys/values the backbone computes on a real word string (Li & Liang §7.2)
    RANDOM = "random"  # N(0, init_std²) entries, PEFT's default (an nn.Embedding has std 1)


@dataclass
class PrefixTuningConfig(PromptLearningConfig):
    num_virtual_tokens: int = 10  # P, the prefix length (Li & Liang: 10 for table-to-text, 200 for summaries)
    reparameterize: bool = True  # train through an MLP (§4.3); collapse() keeps only its output
    reparam_hidden: int = 512  # the MLP's hidden width
    init: PrefixInit | str = PrefixInit.WORDS
    init_text: str = "Summarize the article in one short headline"  # words for PrefixInit.WORDS
    init_std: float = 1.0  # scale of a random prefix table (PrefixInit.RANDOM)
    shift_positions: bool = True  # real tokens start at position P, as after a cache of length P

    def __post_init__(self):
        super().__post_init__()
        self.init = enum_value(PrefixInit, self.init, "prefix init")


def split_table(table: torch.Tensor, slots: list[AttentionSlot]) -> tuple[dict, dict]:
    """A table ``(P, W)`` → keys and values ``(1, H_kv, P, d)`` per slot, in slot order.

    Each slot's block is ``[key heads…, value heads…]``: the layout of PEFT's prefix
    (``view(P, 2·L, H_kv, d)``, key of layer ``i`` at ``2i``, value at ``2i+1``).
    """
    keys, values, start, p = {}, {}, 0, table.shape[0]
    for s in slots:
        n = s.kv_heads * s.head_dim
        k, v = table[:, start : start + n], table[:, start + n : start + 2 * n]  # (P, H_kv·d) each
        keys[s] = k.reshape(p, s.kv_heads, s.head_dim).permute(1, 0, 2).unsqueeze(0)  # (1, H_kv, P, d)
        values[s] = v.reshape(p, s.kv_heads, s.head_dim).permute(1, 0, 2).unsqueeze(0)
        start += 2 * n
    return keys, values


def join_table(
    kv: dict[AttentionSlot, tuple[torch.Tensor, torch.Tensor]], slots: list[AttentionSlot]
) -> torch.Tensor:
    """Inverse of :func:`split_table` for one sequence: ``(1, H_kv, P, d)`` pairs → ``(P, W)``."""
    flat = lambda x: x[0].permute(1, 0, 2).reshape(x.shape[2], -1)  # noqa: E731  (P, H_kv·d)
    return torch.cat([torch.cat([flat(kv[s][0]), flat(kv[s][1])], -1) for s in slots], -1)  # (P, W)


class PrefixEncoder(nn.Module):
    """``P`` virtual tokens → a key and a value for every slot: a table ``(P, W)``.

    Direct: the table is the parameter. Reparameterised: ``table = MLP(P')`` with ``P'`` of shape
    ``(P, embed_dim)`` and ``MLP = Linear(embed_dim, hidden) → tanh → Linear(hidden, W)``.
    ``W = Σ_slots 2·H_kv·d``.
    """

    def __init__(
        self,
        slots: list[AttentionSlot],
        num_tokens: int,
        reparameterize: bool,
        embed_dim: int,
        hidden: int = 512,
        init_std: float = 1.0,
    ):
        super().__init__()
        self.slots, self.num_tokens = list(slots), num_tokens
        width = sum(s.width for s in self.slots)
        if reparameterize:
            self.embedding = nn.Parameter(torch.randn(num_tokens, embed_dim))  # P' (P, E)
            self.mlp = nn.Sequential(nn.Linear(embed_dim, hidden), nn.Tanh(), nn.Linear(hidden, width))
        else:
            self.table = nn.Parameter(torch.randn(num_tokens, width) * init_std)  # (P, W)

    @property
    def reparameterized(self) -> bool:
        return hasattr(self, "mlp")

    def full_table(self) -> torch.Tensor:
        return self.mlp(self.embedding) if self.reparameterized else self.table  # (P, W)

    def forward(self) -> tuple[dict, dict]:
        return split_table(self.full_table(), self.slots)

    @torch.no_grad()
    def collapse(self) -> None:
        """Replace ``P'`` and the MLP by their output: the plain table inference needs."""
        if self.reparameterized:
            table = self.full_table().detach().clone()
            del self.mlp, self.embedding
            self.table = nn.Parameter(table)

    @torch.no_grad()
    def set_table(self, target: torch.Tensor) -> float:
        """Make the prefix equal ``target`` ``(P, W)``; returns the remaining mean squared error.

        Direct: copied. Reparameterised: ``P'`` and the first layer stay random and the last
        layer is solved for in closed form (least squares, minimum norm): with ``P ≤ hidden`` the
        MLP then reproduces the target exactly. Li & Liang's code fits the MLP by gradient steps;
        the solve reaches the same point at once.
        """
        target = target.detach().to(self.full_table().dtype)
        if not self.reparameterized:
            self.table.copy_(target)
        else:
            first, last = self.mlp[0], self.mlp[2]
            h = torch.tanh(first(self.embedding))  # (P, hidden)
            last.bias.zero_()
            last.weight.copy_((torch.linalg.pinv(h) @ target).T)  # (W, hidden)
        return float((self.full_table() - target).pow(2).mean())


def word_activations(
    backbone: Backbone, text: str, num_tokens: int, slots: list[AttentionSlot]
) -> torch.Tensor:
    """The table ``(P, W)`` of keys/values the backbone computes on ``text`` (repeated or cut to P tokens)."""
    ids = backbone.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise PrefixError("init_text has no tokens: give a few words that describe the task")
    ids = (ids * (num_tokens // len(ids) + 1))[:num_tokens]
    x = torch.tensor([ids], device=backbone.model.get_input_embeddings().weight.device)  # (1, P)
    extra = {"decoder_input_ids": x} if backbone.model.config.is_encoder_decoder else {}
    return join_table(capture_kv(backbone.model, x, **extra), slots)


class PrefixTuning(PromptMethod):
    """Prefix tuning of a frozen causal LM, encoder-decoder or masked LM.

    Generation (causal LM or seq2seq): :meth:`lm_loss` for training, :meth:`generate`. Classification:
    pass a ``template`` and ``verbalizer``; then ``forward(texts)`` gives class logits ``(B, C)``.

    >>> pt = PrefixTuning(load_backbone("tiny-gpt2"), config=PrefixTuningConfig(num_virtual_tokens=4))
    >>> pt.prefix().keys[pt.slots[0]].shape  # (1, H_kv, P, head_dim)
    torch.Size([1, 4, 4, 8])
    """

    config_class = PrefixTuningConfig

    def __init__(
        self,
        backbone: Backbone,
        template: Template | str | None = None,
        verbalizer: Verbalizer | None = None,
        config: PrefixTuningConfig | None = None,
    ):
        config = config if config is not None else PrefixTuningConfig()
        if (template is None) != (verbalizer is None):
            raise PrefixError(
                "classification needs both a template and a verbalizer (or neither, to generate)"
            )
        if backbone.kind == "encoder":
            raise PrefixError(
                f"{backbone.name!r} has no LM head, so there is nothing to generate or fill "
                "in: use PTuningV2 (deep prompts with a classification head) on an encoder"
            )
        super().__init__(backbone, config, verbalizer.labels if verbalizer is not None else [])
        self.model.requires_grad_(False)
        self.slot_of = enable_prefixes(self.model)  # attention module → slot
        self.slots = list(dict.fromkeys(self.slot_of.values()))
        self.template = Template(template) if isinstance(template, str) else template
        self.verbalizer = verbalizer
        self.causal = backbone.kind == "causal-lm"
        if self.template is not None:
            if self.template.num_virtual_tokens:
                raise PrefixError(
                    f"{self.template!r} marks virtual tokens among its words; a prefix lives in "
                    "the layers, not in the text: use a hard template"
                )
            if self.causal:
                self.template.check_causal()
            self.label_ids = verbalizer.token_ids(self.tokenizer, space_before=self.template.mask_space)
            self.text_columns = self.template.text_slots
            check_length(self.model, config.num_virtual_tokens, config.max_length, config.shift_positions)
        else:
            check_length(self.model, config.num_virtual_tokens, 1, config.shift_positions)
        with seeded(config.seed):
            self.prompts = PrefixEncoder(
                self.slots,
                config.num_virtual_tokens,
                config.reparameterize,
                self.model.get_input_embeddings().weight.shape[1],
                config.reparam_hidden,
                config.init_std,
            ).to(self.device)  # fp32
            self.init_error = 0.0
            if config.init is PrefixInit.WORDS and config.num_virtual_tokens > 0:
                target = word_activations(backbone, config.init_text, config.num_virtual_tokens, self.slots)
                self.init_error = self.prompts.set_table(target.float())

    def prefix(self) -> KVPrefix:
        """The current prefix (through the MLP while reparameterised) for ``kv_prefix=``."""
        keys, values = self.prompts()
        cfg = self.config
        return KVPrefix(self.slot_of, keys, values, cfg.num_virtual_tokens, cfg.shift_positions)

    def prefix_parameters(self) -> int:
        """Numbers kept for inference: ``P × W`` (what :meth:`collapse` leaves)."""
        return self.config.num_virtual_tokens * sum(s.width for s in self.slots)

    def collapse(self) -> None:
        """Drop the reparameterisation: keep the MLP's output as a plain per-layer table."""
        self.prompts.collapse()

    def forward(self, texts) -> torch.Tensor:
        """Class logits ``(B, C)`` through the template and verbalizer, with the prefix."""
        if self.template is None:
            raise PrefixError(
                "this PrefixTuning was built for generation: pass template= and verbalizer= "
                "to classify, or call generate()/lm_loss()"
            )
        return self.logits(check_inputs(texts, self.text_columns))

    def logits(self, columns: dict[str, list[str]]) -> torch.Tensor:
        b = {
            k: v.to(self.device)
            for k, v in self.template.encode(
                self.tokenizer, columns, self.config.max_length, causal=self.causal
            ).items()
        }
        logits = answer_logits(
            self.model, self.causal, b["input_ids"], b["attention_mask"], b["mask_pos"], prefix=self.prefix()
        )  # (B, V)
        return self.verbalizer.class_logits(logits, self.label_ids)  # (B, C)

    def lm_loss(self, sources: list[str], targets: list[str]) -> torch.Tensor:
        """Teacher-forced cross-entropy of ``targets`` given ``sources``, with the prefix."""
        self._check_generative()
        sources, targets = check_inputs(sources)["text"], check_inputs(targets)["text"]
        batch = encode_pairs(
            self.tokenizer, sources, targets, seq2seq=self.backbone.kind == "seq2seq", device=self.device
        )
        return lm_loss(self.model, batch, prefix=self.prefix())

    def generate(self, sources: list[str], max_new_tokens: int = 24, newline: bool = True) -> list[str]:
        """Greedy continuations of ``sources`` (cut at the first newline when ``newline``)."""
        self._check_generative()
        b = encode_pairs(
            self.tokenizer,
            check_inputs(sources)["text"],
            None,
            seq2seq=self.backbone.kind == "seq2seq",
            device=self.device,
        )
        with torch.no_grad():
            prefix = self.prefix()
        ids = greedy_generate(
            self.model,
            b["input_ids"],
            b["attention_mask"],
            prefix=prefix,
            max_new_tokens=max_new_tokens,
            stop_ids=stop_token_ids(self.tokenizer, newline),
            pad_id=self.tokenizer.pad_token_id,
        )
        return decode(self.tokenizer, ids, newline)

    def _check_generative(self) -> None:
        if self.backbone.kind not in ("causal-lm", "seq2seq"):
            raise PrefixError(
                f"generation needs a causal LM or an encoder-decoder; {self.backbone.name!r} "
                f"is a {self.backbone.kind}"
            )

    def checkpoint_spec(self) -> dict:
        return {
            "template": self.template.pattern if self.template is not None else None,
            "verbalizer": self.verbalizer.spec() if self.verbalizer is not None else None,
            "config": self.config.to_dict(),
            "collapsed": not self.prompts.reparameterized,
        }

    @classmethod
    def from_checkpoint_spec(cls, backbone: Backbone, spec: dict) -> PrefixTuning:
        config = PrefixTuningConfig.from_dict({**spec["config"], "init": "random"})  # the tensors come next
        verbalizer = Verbalizer.from_spec(spec["verbalizer"]) if spec["verbalizer"] else None
        method = cls(backbone, spec["template"], verbalizer, config)
        method.config.init = PrefixInit(spec["config"]["init"])  # as it was trained
        return method

    def prepare_load(self, spec: dict) -> None:
        if spec.get("collapsed"):
            self.collapse()
