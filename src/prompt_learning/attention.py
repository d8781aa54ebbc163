"""Which attention kernel runs: PyTorch's fused ``sdpa``, or the formula written out.

Every backbone the library loads attends through :func:`attend` (registered, with the key/value
prefix of :mod:`prompt_learning.kv_prefix`, as that module's ``ATTENTION_NAME``). It is
transformers' ``sdpa`` everywhere except in one case: **gradients flowing on a CPU**. There
PyTorch's fused CPU kernel has a backward about 16× as slow as its forward (SmolLM2, batch 8 × 64
tokens, bf16: 6.8 ms against 0.4 ms a layer), a third of a training step; the written-out
formula, whose backward is two small matmuls and a softmax, makes the step about a quarter
faster (``benchmarks/cpu_step.py``). Without gradients (evaluation, generation) and on GPUs
nothing changes.

:func:`attention_formula` is ``softmax(Q Kᵀ · scale + mask) V`` with the conventions of
transformers' ``sdpa_attention_forward``: grouped-query heads repeated, a boolean mask keeps
``True`` (a query that sees no key gets zeros), a float mask is added, no mask on a causal layer means "causal" (query ``i`` sees keys
``0…i``), the softmax in fp32. Unit tests hold it equal to ``sdpa`` on values and gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward


def attention_formula(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """``softmax(Q Kᵀ · scale + mask) V``: query ``(B, H, T, d)``, key/value ``(B, H_kv, S, d)``.

    Returns ``(B, T, H, d)`` and ``None``, as transformers' attention functions do.
    """
    groups = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)  # (B, H, S, d)
    q_len, kv_len = query.shape[2], key.shape[2]
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = q_len > 1 and attention_mask is None and causal
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = (query @ key.transpose(-1, -2)) * scale  # (B, H, T, S)
    if causal:  # top-left aligned, as sdpa's is_causal
        attention_mask = torch.ones(q_len, kv_len, dtype=torch.bool, device=query.device).tril()
    boolean = attention_mask is not None and attention_mask.dtype == torch.bool
    if boolean:  # True attends
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    elif attention_mask is not None:
        scores = scores + attention_mask
    probs = scores.softmax(-1, dtype=torch.float32).to(value.dtype)
    if boolean:  # a query that may see no key (a padding row) reads nothing, as in sdpa
        probs = probs.masked_fill(~attention_mask.any(-1, keepdim=True), 0.0)
    probs = F.dropout(probs, p=dropout, training=dropout > 0)
    return (probs @ value).transpose(1, 2).contiguous(), None  # (B, T, H, d)


def _written_out(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, kwargs: dict) -> bool:
    """True where the formula is the faster kernel: gradients flowing on a CPU, no extras."""
    if query.device.type != "cpu" or not torch.is_grad_enabled():
        return False
    if kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None:
        return False  # sdpa's own handling of these stays in charge
    return query.requires_grad or key.requires_grad or value.requires_grad


def attend(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers' ``sdpa``, or :func:`attention_formula` when gradients flow on a CPU."""
    if _written_out(query, key, value, kwargs):
        return attention_formula(module, query, key, value, attention_mask, **kwargs)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
