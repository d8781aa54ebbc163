"""Contextual calibration (Zhao et al. 2021, "Calibrate Before Use").

A prompt has a bias of its own: with ``"{text} It was {mask}."`` SmolLM2 says *great* for
almost every review. Zhao et al. measure that bias with *content-free* inputs — ``"N/A"``,
``""``, ``"[MASK]"`` — which carry no evidence for any class, so whatever the model predicts for
them is the prompt's prior ``p_cf`` (averaged over the content-free inputs). Calibration divides
it out:

    q = softmax(W p + b),   W = diag(p_cf)^-1,   b = 0

so a content-free input becomes uniform. :class:`CalibratedClassifier` wraps any *method*
(texts → class logits ``(B, C)``) and returns the calibrated log-scores; nothing is trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import PromptLearningError
from .training import eval_mode

CONTENT_FREE: tuple[str, ...] = ("N/A", "", "[MASK]")  # Zhao et al. 2021's three inputs


class CalibrationError(PromptLearningError, ValueError):
    """Calibration cannot be done as asked; the message names the fix."""


def _inputs_for(method: nn.Module, texts: list[str]):
    """Content-free inputs in the shape ``method`` takes: a list, or one column per text slot."""
    template = getattr(method, "template", None)
    slots = getattr(template, "text_slots", ("text",))
    return list(texts) if slots == ("text",) else {s: list(texts) for s in slots}


@torch.no_grad()
def content_free_probs(method: nn.Module, content_free: Sequence[str] = CONTENT_FREE) -> torch.Tensor:
    """``p_cf (C,)``: the method's class probabilities for content-free inputs, averaged.

    For a two-text template each slot receives the content-free string (as in the paper).
    """
    if isinstance(content_free, str) or len(content_free) == 0:
        raise CalibrationError(
            "content_free must be a non-empty list of strings such as "
            f"{list(CONTENT_FREE)}, got {content_free!r}"
        )
    with eval_mode(method):
        logits = method(_inputs_for(method, list(content_free)))  # (N_cf, C)
    return F.softmax(logits.float(), dim=-1).mean(0)  # (C,)


def calibrate_logits(logits: torch.Tensor, p_cf: torch.Tensor) -> torch.Tensor:
    """Calibrated log-probabilities ``(B, C)``: ``log softmax(W p)`` with ``W = diag(p_cf)^-1``."""
    if logits.shape[-1] != p_cf.shape[-1]:
        raise CalibrationError(
            f"logits have {logits.shape[-1]} classes but p_cf has {p_cf.shape[-1]}; "
            "measure p_cf with the same method"
        )
    log_p = F.log_softmax(logits.float(), dim=-1)  # (B, C)
    return F.log_softmax(log_p - p_cf.to(log_p.device).clamp_min(1e-12).log(), dim=-1)  # (B, C)


class CalibratedClassifier(nn.Module):
    """``method`` with contextual calibration: same call shape, texts → calibrated scores ``(B, C)``.

    ``p_cf`` is measured once, when the wrapper is made (call :meth:`recalibrate` after the
    wrapped method changes, e.g. after training).

    >>> cloze = ClozeClassifier(load_backbone("tiny-bert"), "{text} It was {mask}.",
    ...                         Verbalizer({"negative": "bad", "positive": "good"}))
    >>> calibrated = CalibratedClassifier(cloze)
    >>> calibrated(["a fine film"]).shape  # (B, C)
    torch.Size([1, 2])
    """

    def __init__(self, method: nn.Module, content_free: Sequence[str] = CONTENT_FREE):
        super().__init__()
        self.method = method
        self.content_free = list(content_free) if not isinstance(content_free, str) else content_free
        self.register_buffer("p_cf", content_free_probs(method, self.content_free))  # (C,)

    def recalibrate(self) -> torch.Tensor:
        """Measure ``p_cf`` again (the wrapped method changed); returns it."""
        self.p_cf = content_free_probs(self.method, self.content_free).to(self.p_cf.device)
        return self.p_cf

    @property
    def template(self):
        return getattr(self.method, "template", None)

    def forward(self, texts) -> torch.Tensor:
        return calibrate_logits(self.method(texts), self.p_cf)  # (B, C)


def prediction_shares(logits: torch.Tensor) -> torch.Tensor:
    """``(C,)``: the fraction of inputs predicted as each class — a prompt's bias at a glance."""
    pred = logits.argmax(-1)  # (B,)
    return torch.bincount(pred, minlength=logits.shape[-1]).float() / max(1, len(pred))
