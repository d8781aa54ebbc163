"""Token positions: how many a backbone has, and which one each token of a padded batch takes.

Every method that puts something in front of the text — a soft prompt in the input, a key/value
prefix in every layer — must count it in the positions, and every method must fit in the
backbone's position table. Both rules live here, once.
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import PromptLearningError

_ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert", "longformer")  # positions start after padding_idx


class PositionError(PromptLearningError, ValueError):
    """Inputs that need more positions than the backbone has; the message names the fix."""


def max_positions(model: nn.Module) -> int | None:
    """How many token positions the backbone has (``None`` if it does not say)."""
    cfg = model.config
    n = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    if n is not None and cfg.model_type in _ROBERTA_LIKE:
        n -= cfg.pad_token_id + 1  # RoBERTa's positions start after padding_idx
    return n


def check_positions(
    model: nn.Module, text_length: int, virtual: int = 0, what: str = "virtual tokens"
) -> None:
    """Raise before any compute if ``virtual`` + ``text_length`` positions exceed the backbone's."""
    limit = max_positions(model)
    if limit is None or virtual + text_length <= limit:
        return
    if virtual >= limit:
        raise PositionError(
            f"{virtual} {what} alone need more than the {limit} positions of "
            f"{type(model).__name__}: use fewer than {limit} {what}"
        )
    raise PositionError(
        f"{virtual} {what} + max_length {text_length} need {virtual + text_length} positions, "
        f"but {type(model).__name__} has {limit}: lower max_length to at most {limit - virtual}"
        + (f" or use fewer {what}" if virtual else "")
    )


def position_ids(
    attention_mask: torch.Tensor, offset: int = 0, model: nn.Module | None = None
) -> torch.Tensor:
    """Positions ``(B, T)`` of every column of ``attention_mask``: real tokens count from ``offset``.

    Left or right padding gives a real token the same position (padding columns get a position
    too; the mask hides them). ``offset`` counts what stands before the text (a prefix of ``P``
    virtual tokens: ``offset = P``). RoBERTa-like ``model``\\ s start after their padding index,
    as their own embedding layer would.
    """
    start = 0
    if model is not None and model.config.model_type in _ROBERTA_LIKE:
        start = model.config.pad_token_id + 1
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0) + offset + start  # (B, T)
