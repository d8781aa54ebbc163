"""Cloze classification: a template makes the task a fill-in-the-blank, the LM head fills it.

``ClozeClassifier(backbone, template, verbalizer)`` maps texts to class logits ``(B, C)`` by
reading the pretrained LM head's logits for the label words in the answer slot:

* a **masked LM** (BERT, RoBERTa) sees the mask token anywhere in the template and predicts it;
* a **causal LM** (GPT-2, Llama, SmolLM2) predicts the next token after the template's text, so
  the slot must be at the end (see :attr:`~prompt_learning.templates.Template.mask_at_end`).

Only the logits that are needed are computed: one position (``logits_to_keep=1``) for a causal
LM, the mask positions for a masked LM. No parameters are added: zero-shot, this *is* the model.
"""

from __future__ import annotations

import torch
from torch import nn

from .backbones import Backbone
from .templates import Template
from .verbalizers import Verbalizer


class ClozeClassifier(nn.Module):
    """Texts → class logits through a template, the backbone's LM head and a verbalizer.

    >>> clf = ClozeClassifier(load_backbone("tiny-bert"), Template("{text} It was {mask}."),
    ...                       Verbalizer({"negative": "bad", "positive": "good"}))
    >>> clf(["a fine film"]).shape
    torch.Size([1, 2])
    """

    def __init__(self, backbone: Backbone, template: Template | str, verbalizer: Verbalizer,
                 max_length: int = 128):
        super().__init__()
        if backbone.kind not in ("causal-lm", "masked-lm"):
            raise ValueError(f"cloze classification needs an LM head; {backbone.name!r} is a "
                             f"{backbone.kind}. Use a masked or causal LM, or a classification head.")
        self.backbone = backbone
        self.model = backbone.model
        self.tokenizer = backbone.tokenizer
        self.template = Template(template) if isinstance(template, str) else template
        self.verbalizer = verbalizer
        self.causal = backbone.kind == "causal-lm"
        if self.causal and not self.template.mask_at_end:
            self.template.encode(self.tokenizer, {}, max_length, causal=True)  # raises the clear error
        if not self.causal and self.tokenizer.mask_token_id is None:
            raise ValueError(f"{backbone.name!r} has no mask token")
        space = next(p.space_before for p in self.template.pieces if p.kind == "mask")
        self.label_ids = verbalizer.token_ids(self.tokenizer, space_before=space)  # validated now
        self.max_length = max_length

    def encode(self, texts) -> dict[str, torch.Tensor]:
        columns = {"text": list(texts)} if not isinstance(texts, dict) else texts
        if "text" not in self.template.text_slots and "text" in columns and "text_a" not in columns:
            raise ValueError(f"{self.template!r} needs text_a/text_b columns; pass a dict of lists")
        batch = self.template.encode(self.tokenizer, columns, self.max_length, causal=self.causal)
        device = self.model.get_input_embeddings().weight.device
        return {k: v.to(device) for k, v in batch.items()}

    def word_logits(self, texts) -> torch.Tensor:
        """``(B, V)`` LM-head logits in the answer slot."""
        b = self.encode(texts)
        return self.slot_logits(b["input_ids"], b["attention_mask"], b["mask_pos"])

    def slot_logits(self, input_ids, attention_mask, mask_pos, inputs_embeds=None) -> torch.Tensor:
        """LM-head logits ``(B, V)`` at ``mask_pos``; ``inputs_embeds`` may replace the ids."""
        if self.causal:
            return causal_next_token_logits(self.model, input_ids, attention_mask, inputs_embeds)
        return masked_lm_logits_at(self.model, input_ids, attention_mask, mask_pos, inputs_embeds)

    def forward(self, texts) -> torch.Tensor:
        return self.verbalizer.class_logits(self.word_logits(texts), self.label_ids)  # (B, C)


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 at each row's first real token (left padding safe)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def causal_next_token_logits(model, input_ids, attention_mask, inputs_embeds=None) -> torch.Tensor:
    """Next-token logits ``(B, V)`` after the last position of a left-padded batch."""
    out = model(input_ids=None if inputs_embeds is not None else input_ids, inputs_embeds=inputs_embeds,
                attention_mask=attention_mask, position_ids=positions_from_mask(attention_mask),
                logits_to_keep=1, use_cache=False)
    return out.logits[:, -1]


def _mlm_head(model) -> nn.Module | None:
    """The module on top of the base model (BERT's ``cls``, RoBERTa's ``lm_head``)."""
    heads = [m for name, m in model.named_children() if m is not model.base_model]
    return heads[0] if len(heads) == 1 else None


def masked_lm_logits_at(model, input_ids, attention_mask, mask_pos, inputs_embeds=None) -> torch.Tensor:
    """MLM logits ``(B, V)`` at ``mask_pos``: the head runs on those positions only."""
    kwargs = dict(attention_mask=attention_mask)
    kwargs |= {"inputs_embeds": inputs_embeds} if inputs_embeds is not None else {"input_ids": input_ids}
    rows = torch.arange(attention_mask.shape[0], device=attention_mask.device)
    head = _mlm_head(model)
    if head is None:
        return model(**kwargs).logits[rows, mask_pos]
    hidden = model.base_model(**kwargs).last_hidden_state  # (B, T, H)
    return head(hidden[rows, mask_pos])  # (B, V)
