"""The answer slot: where a method that reads label words takes the LM head's logits.

A template turns a task into a fill-in-the-blank (PET, :mod:`prompt_learning.cloze`). The blank is
read from the pretrained LM head, the same way for every method that reads label words (cloze and
PET, AutoPrompt, multi-token words, prompt tuning and P-tuning with a verbalizer, prefix tuning):

* a **causal LM** predicts the next token after the template's text: one position is computed
  (``logits_to_keep=1``), so the slot must end the template;
* a **masked LM** predicts the mask token: the head runs on the mask positions only.

:func:`check_lm_backbone` checks a backbone and a template for this readout once, before any
compute; :func:`answer_logits` reads the slot. With a ``prefix``
(:class:`~prompt_learning.kv_prefix.KVPrefix`) every layer attends to it as well.
"""

from __future__ import annotations

import torch
from torch import nn

from .backbones import Backbone
from .errors import InputError
from .kv_prefix import KVPrefix, prefixed_forward
from .positions import position_ids
from .templates import Template, TemplateError

LM_KINDS = ("causal-lm", "masked-lm")


def check_lm_backbone(
    backbone: Backbone,
    template: Template | None,
    who: str,
    error: type[Exception] = InputError,
    virtual_tokens: bool = False,
    fix: str = "use a masked or causal LM, or a classification head",
) -> None:
    """Refuse, before any compute, a backbone or template the answer-slot readout cannot use.

    ``who`` names the method in the messages; ``error`` is its error class; ``virtual_tokens``:
    whether the template may mark virtual tokens ``[P0]`` … (P-tuning's, AutoPrompt's triggers);
    ``fix``: what to do instead when the backbone has no LM head.
    """
    if backbone.kind not in LM_KINDS:
        raise error(
            f"{who} needs an LM head to read label words; {backbone.name!r} is a {backbone.kind}: {fix}"
        )
    if template is None:
        return
    if template.num_virtual_tokens and not virtual_tokens:
        raise TemplateError(
            f"{template!r} marks virtual tokens [P0]…, which {who} does not read: use a hard "
            "template (PTuning places virtual tokens among the words)"
        )
    if backbone.kind == "causal-lm":
        template.check_causal()
    elif backbone.tokenizer.mask_token_id is None:
        raise error(f"{backbone.name!r} has no mask token")


def lm_head(model: nn.Module) -> nn.Module | None:
    """The module on top of the base model (BERT's ``cls``, RoBERTa's ``lm_head``), if it is one."""
    heads = [m for _, m in model.named_children() if m is not model.base_model]
    return heads[0] if len(heads) == 1 else None


def causal_next_token_logits(
    model, input_ids, attention_mask, inputs_embeds=None, prefix: KVPrefix | None = None
) -> torch.Tensor:
    """Next-token logits ``(B, V)`` after the last position of a left-padded batch."""
    ids = None if inputs_embeds is not None else input_ids
    if prefix is not None:  # positions start after the prefix
        out = prefixed_forward(model, prefix, ids, attention_mask, inputs_embeds, logits_to_keep=1)
        return out.logits[:, -1]
    out = model(
        input_ids=ids,
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        logits_to_keep=1,
        use_cache=False,
    )
    return out.logits[:, -1]


def masked_lm_logits_at(
    model, input_ids, attention_mask, positions, inputs_embeds=None, rows=None, prefix: KVPrefix | None = None
) -> torch.Tensor:
    """MLM logits ``(M, V)`` at ``(rows[m], positions[m])``: the head runs on those positions only.

    ``rows`` defaults to one position per row (``positions`` is then each row's mask, ``(B,)``).
    """
    ids = None if inputs_embeds is not None else input_ids
    if rows is None:
        rows = torch.arange(attention_mask.shape[0], device=attention_mask.device)
    if prefix is not None:
        out = prefixed_forward(model, prefix, ids, attention_mask, inputs_embeds)
        return out.logits[rows, positions]
    kwargs = {"attention_mask": attention_mask}
    kwargs |= {"inputs_embeds": inputs_embeds} if inputs_embeds is not None else {"input_ids": ids}
    head = lm_head(model)
    if head is None:
        return model(**kwargs).logits[rows, positions]
    hidden = model.base_model(**kwargs).last_hidden_state  # (B, T, H)
    return head(hidden[rows, positions])  # (M, V)


def answer_logits(
    model,
    causal: bool,
    input_ids,
    attention_mask,
    mask_pos,
    inputs_embeds=None,
    prefix: KVPrefix | None = None,
) -> torch.Tensor:
    """LM-head logits ``(B, V)`` in each row's answer slot; ``inputs_embeds`` may replace the ids."""
    if causal:
        return causal_next_token_logits(model, input_ids, attention_mask, inputs_embeds, prefix)
    return masked_lm_logits_at(model, input_ids, attention_mask, mask_pos, inputs_embeds, prefix=prefix)
