"""Key/value prefixes at every attention layer: the mechanism under prefix tuning and P-tuning v2.

A prefix of ``P`` virtual tokens gives an attention layer ``P`` extra keys and values that every
real query attends to, ``softmax(Q [K_pre; K]ᵀ / √d) [V_pre; V]``, while the real tokens' own
keys, values and hidden states are computed by the frozen backbone as usual (Li & Liang 2021,
§4; Liu et al. 2022, §3). Nothing is added to the input sequence.

How it is done on transformers 5 (where tuple ``past_key_values`` are gone and BERT-family
encoders take no cache at all):

* one attention function, registered with ``AttentionInterface`` under ``ATTENTION_NAME``,
  concatenates the layer's prefix in front of the keys/values it receives and pads the attention
  mask with ``P`` visible columns, then runs :func:`~prompt_learning.attention.attend` (``sdpa``,
  or the formula written out when gradients flow on a CPU). The mask builder is registered too:
  without it transformers hands the function no padding mask at all. Every backbone the library
  loads uses this function, prefix or not;
* the prefix travels as the keyword argument ``kv_prefix=`` of the model's forward; transformers 5
  passes unknown keywords down to every attention call. No global state: two methods can share
  one backbone, gradient checkpointing re-runs see the same prefix, and without ``kv_prefix``
  the function *is* plain :func:`~prompt_learning.attention.attend`;
* which layer is which (encoder/decoder stack, self/cross attention, layer number) is read from
  the module tree once (:func:`find_slots`), so BART's three kinds of attention get their own
  prefixes, as in Li & Liang's encoder-decoder experiments;
* real tokens take positions ``P, P+1, …`` (counting only unpadded tokens), as a cache of length
  ``P`` made them in the papers' code and in PEFT; models whose forward takes no position ids
  (BART) keep their own positions and the prefix is position-free;
* a cache, when used, holds only real tokens: the prefix is prepended at every call, so it is
  there from the first generation step and is never duplicated.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from .attention import attend
from .positions import PositionError, check_positions, position_ids

ATTENTION_NAME = "kv_prefix_sdpa"
_QUERY_NAMES = ("q_proj", "query", "c_attn", "q_attn")  # Llama/BART, BERT/RoBERTa, GPT-2


class PrefixError(PositionError):
    """A prefix that cannot work with this backbone or input; the message names the fix."""


@dataclass(frozen=True)
class AttentionSlot:
    """One attention layer that can take a prefix, and the shape of the keys it expects."""

    stack: str  # "encoder" or "decoder" (decoder-only models: "decoder"; BERT: "encoder")
    kind: str  # "self" or "cross"
    layer: int  # layer number within its stack
    kv_heads: int  # key/value heads (fewer than query heads under grouped-query attention)
    head_dim: int

    @property
    def width(self) -> int:
        """Numbers one virtual token adds to this layer: a key and a value."""
        return 2 * self.kv_heads * self.head_dim


@dataclass
class KVPrefix:
    """Prefix keys/values for some attention slots; pass it to a forward as ``kv_prefix=``.

    ``keys[slot]`` and ``values[slot]`` are ``(B or 1, kv_heads, P, head_dim)``; a slot without
    an entry gets no prefix (P-tuning v2's "first l layers"). ``capture``, when a dict, receives
    every attention call's own ``(keys, values)`` (used to initialise prefixes from real words).
    """

    slots: dict[nn.Module, AttentionSlot]  # from find_slots(model)
    keys: dict[AttentionSlot, torch.Tensor] = field(default_factory=dict)
    values: dict[AttentionSlot, torch.Tensor] = field(default_factory=dict)
    length: int = 0  # P
    shift_positions: bool = True  # real tokens start at position P
    capture: dict | None = None
    reached: set = field(default_factory=set)  # slots whose attention call received the prefix

    @property
    def position_offset(self) -> int:
        return self.length if self.shift_positions else 0


def find_slots(model: nn.Module) -> dict[nn.Module, AttentionSlot]:
    """Every attention module of ``model`` with its slot, in module order."""
    enc_dec = bool(getattr(model.config, "is_encoder_decoder", False))
    out: dict[nn.Module, AttentionSlot] = {}
    for name, module in model.named_modules():
        if not hasattr(module, "layer_idx") or not any(hasattr(module, q) for q in _QUERY_NAMES):
            continue
        parts = name.split(".")
        cross = bool(getattr(module, "is_cross_attention", False)) or any(
            p in ("encoder_attn", "crossattention", "EncDecAttention") for p in parts
        )
        if enc_dec:
            stack = "encoder" if "encoder" in parts else "decoder"
        else:
            stack = "decoder" if getattr(module, "is_causal", False) and not cross else "encoder"
        layer = (
            module.layer_idx
            if isinstance(module.layer_idx, int)
            else int(next(p for p in parts if re.fullmatch(r"\d+", p)))
        )
        out[module] = AttentionSlot(stack, "cross" if cross else "self", layer, *_kv_shape(module))
    if not out:
        raise PrefixError(
            f"found no attention layers in {type(model).__name__} that take a key/value "
            "prefix; supported families: Llama-like decoders, GPT-2, BERT, RoBERTa, BART"
        )
    return out


def _kv_shape(module: nn.Module) -> tuple[int, int]:
    head_dim = getattr(module, "head_dim", None) or module.attention_head_size
    if hasattr(module, "k_proj"):
        width = module.k_proj.out_features
    elif hasattr(module, "key"):
        width = module.key.out_features
    else:  # GPT-2: c_attn projects to [q; k; v], each split_size wide
        width = module.split_size
    return width // head_dim, head_dim


def prefix_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention over ``[prefix keys; keys]`` when a ``kv_prefix`` is passed, over the keys otherwise."""
    prefix: KVPrefix | None = kwargs.pop("kv_prefix", None)
    if prefix is not None:
        slot = prefix.slots.get(module)
        if prefix.capture is not None and slot is not None:
            prefix.capture[slot] = (key.detach(), value.detach())  # (B, H_kv, T, d) each
        if slot in prefix.keys:
            prefix.reached.add(slot)
            pk, pv = prefix.keys[slot], prefix.values[slot]  # (B or 1, H_kv, P, d)
            batch = key.shape[0]
            causal = query.shape[2] > 1 and kwargs.get("is_causal", getattr(module, "is_causal", True))
            attention_mask = _pad_mask(
                attention_mask, causal, query.shape[2], key.shape[2], pk.shape[2], key.device
            )
            key = torch.cat([pk.to(key.dtype).expand(batch, -1, -1, -1), key], dim=2)  # (B, H_kv, P+T, d)
            value = torch.cat([pv.to(value.dtype).expand(batch, -1, -1, -1), value], dim=2)
    return attend(module, query, key, value, attention_mask, **kwargs)


def _pad_mask(
    mask: torch.Tensor | None, causal: bool, q_len: int, kv_len: int, p: int, device: torch.device
) -> torch.Tensor | None:
    """A 4-D mask with ``p`` visible columns in front; ``None`` stands for "causal" or "all visible"."""
    if mask is None:
        if not causal:
            return None  # every key visible, prefix included
        past = kv_len - q_len  # query i sits at absolute index past + i
        cols, rows = torch.arange(kv_len, device=device), torch.arange(q_len, device=device)
        mask = (cols[None, :] <= rows[:, None] + past)[None, None]  # (1, 1, Q, K)
    visible = torch.ones if mask.dtype == torch.bool else torch.zeros  # bool: True attends; float: 0 adds
    pad = visible(*mask.shape[:-1], p, dtype=mask.dtype, device=mask.device)  # (B, 1, Q, P)
    return torch.cat([pad, mask], dim=-1)  # (B, 1, Q, P+K)


def prefix_attention_eager(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    prefix_key: torch.Tensor,
    prefix_value: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """One attention layer with a prefix, written out: ``softmax(Q [K_p; K]ᵀ / √d) [V_p; V]``.

    ``query (B, H, T, d)``; ``key``, ``value (B, H_kv, T, d)``; ``prefix_key``, ``prefix_value``
    ``(B or 1, H_kv, P, d)``; ``mask (B, T)`` with 1 at real tokens (``None``: all real) — keys that
    are padding are hidden, the ``P`` prefix columns are always visible. Grouped-query attention
    (``H_kv < H``) repeats each key/value head for its group of query heads. Returns ``(B, H, T, d)``.
    The fast path (:func:`prefix_attention`, sdpa) must give the same numbers (non-causal attention).
    """
    B, H, T, d = query.shape
    group = H // key.shape[1]
    K = torch.cat([prefix_key.expand(B, -1, -1, -1), key], dim=2).repeat_interleave(
        group, 1
    )  # (B, H, P+T, d)
    V = torch.cat([prefix_value.expand(B, -1, -1, -1), value], dim=2).repeat_interleave(group, 1)
    scores = query @ K.transpose(-1, -2) / math.sqrt(d)  # (B, H, T, P+T)
    if mask is not None:
        visible = torch.cat(
            [torch.ones(B, prefix_key.shape[2], dtype=torch.bool, device=mask.device), mask.bool()], dim=1
        )  # (B, P+T): the prefix is always visible
        scores = scores.masked_fill(~visible[:, None, None, :], float("-inf"))
    return scores.softmax(-1) @ V  # (B, H, T, d)


AttentionInterface.register(ATTENTION_NAME, prefix_attention)
AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


def enable_prefixes(model: nn.Module) -> dict[nn.Module, AttentionSlot]:
    """Switch ``model`` to the prefix-aware attention (plain sdpa without a prefix); its slots."""
    slots = find_slots(model)
    if model.config._attn_implementation != ATTENTION_NAME:
        model.set_attn_implementation(ATTENTION_NAME)
    return slots


def takes_position_ids(model: nn.Module) -> bool:
    return "position_ids" in inspect.signature(model.forward).parameters


def check_length(model: nn.Module, prefix_length: int, text_length: int, shift: bool = True) -> None:
    """Raise before any compute if prefix + text need more positions than the backbone has."""
    check_positions(
        model, text_length, prefix_length if shift and takes_position_ids(model) else 0, what="prefix tokens"
    )


def prefixed_forward(
    model: nn.Module,
    prefix: KVPrefix | None,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    **kwargs,
):
    """``model(...)`` with the prefix in every slot and positions after it.

    ``attention_mask`` ``(B, T_past + T)`` covers the cached tokens too (as in generation); the
    position ids of the ``T`` new tokens are computed from it unless given.
    """
    x = input_ids if input_ids is not None else inputs_embeds
    if attention_mask is None:
        attention_mask = torch.ones(x.shape[:2], dtype=torch.long, device=x.device)
    p = prefix.length if prefix is not None else 0
    shift = prefix.shift_positions if prefix is not None else True
    check_length(model, p, attention_mask.shape[1], shift)
    if takes_position_ids(model) and "position_ids" not in kwargs:
        offset = prefix.position_offset if prefix is not None else 0
        kwargs["position_ids"] = position_ids(attention_mask, offset, model)[:, -x.shape[1] :]
    if prefix is None:
        return model(
            input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs
        )
    unready = [
        slot
        for module, slot in prefix.slots.items()
        if slot in prefix.keys
        and getattr(getattr(module, "config", None), "_attn_implementation", ATTENTION_NAME) != ATTENTION_NAME
    ]
    if unready:
        _never_reached(model, unready)
    prefix.reached.clear()
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        inputs_embeds=inputs_embeds,
        kv_prefix=prefix,
        **kwargs,
    )
    if prefix.keys and not prefix.reached:
        _never_reached(model, list(prefix.keys))
    return out


def _never_reached(model: nn.Module, slots: list[AttentionSlot]) -> None:
    raise PrefixError(
        f"the prefix would never reach {len(slots)} attention layer(s) it was built for (e.g. "
        f"{slots[0]}): the attention implementation is {model.config._attn_implementation!r}, not "
        f"{ATTENTION_NAME!r}. Call enable_prefixes(model) again after changing it"
    )


@torch.no_grad()
def capture_kv(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs
) -> dict[AttentionSlot, tuple[torch.Tensor, torch.Tensor]]:
    """The keys and values ``(B, H_kv, T, d)`` every attention slot computes on ``input_ids``.

    Li & Liang initialise a prefix with these activations of real words (§7.2). For an
    encoder-decoder pass ``decoder_input_ids`` too; cross-attention keys come from the encoder.
    """
    slots = enable_prefixes(model)
    probe = KVPrefix(slots, capture={})
    prefixed_forward(model, probe, input_ids, attention_mask, **kwargs)
    return dict(probe.capture)
