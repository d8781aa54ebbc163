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
from .method import InputError, PromptLearningConfig, PromptMethod, check_inputs
from .positions import check_positions, position_ids
from .templates import Template, TemplateError
from .verbalizers import Verbalizer


class ClozeClassifier(PromptMethod):
    """Texts → class logits through a template, the backbone's LM head and a verbalizer.

    >>> clf = ClozeClassifier(load_backbone("tiny-bert"), Template("{text} It was {mask}."),
    ...                       Verbalizer({"negative": "bad", "positive": "good"}))
    >>> clf(["a fine film"]).shape
    torch.Size([1, 2])
    """

    def __init__(
        self,
        backbone: Backbone,
        template: Template | str,
        verbalizer: Verbalizer,
        config: PromptLearningConfig | None = None,
    ):
        config = config if config is not None else self.config_class()
        if not isinstance(verbalizer, Verbalizer):
            raise InputError(
                f"a cloze classifier reads label words: pass a Verbalizer, got {type(verbalizer).__name__}"
            )
        super().__init__(backbone, config, verbalizer.labels)
        if backbone.kind not in ("causal-lm", "masked-lm"):
            raise InputError(
                f"cloze classification needs an LM head; {backbone.name!r} is a "
                f"{backbone.kind}. Use a masked or causal LM, or a classification head."
            )
        self.template = Template(template) if isinstance(template, str) else template
        if self.template.num_virtual_tokens:
            raise TemplateError(
                f"{self.template!r} has virtual tokens [P0]…: a {type(self).__name__} reads "
                "hard prompts only; use PTuning for virtual tokens among the words"
            )
        if config.num_virtual_tokens:
            raise InputError(
                f"{type(self).__name__} adds no virtual tokens; set num_virtual_tokens=0 or use PromptTuning"
            )
        self.verbalizer = verbalizer
        self.causal = backbone.kind == "causal-lm"
        if self.causal:
            self.template.check_causal()  # before any compute
        if not self.causal and self.tokenizer.mask_token_id is None:
            raise InputError(f"{backbone.name!r} has no mask token")
        self.label_ids = self.answer_ids(verbalizer)  # validated now, before any compute
        self.text_columns = self.template.text_slots
        check_positions(self.model, config.max_length)
        self.model.requires_grad_(False)  # zero-shot: nothing trains (PET decides what does)

    def answer_ids(self, verbalizer: Verbalizer) -> list[list[int]]:
        """Each class's label words as token ids: one token each here (multi-token words: ``MultiTokenCloze``)."""
        return verbalizer.token_ids(self.tokenizer, space_before=self.template.mask_space)

    @property
    def max_length(self) -> int:
        return self.config.max_length

    def encode(self, texts) -> dict[str, torch.Tensor]:
        columns = texts if isinstance(texts, dict) else {"text": list(texts)}
        batch = self.template.encode(self.tokenizer, columns, self.max_length, causal=self.causal)
        return {k: v.to(self.device) for k, v in batch.items()}

    def word_logits(self, texts) -> torch.Tensor:
        """``(B, V)`` LM-head logits in the answer slot."""
        b = self.encode(check_inputs(texts, self.text_columns))
        return self.slot_logits(b["input_ids"], b["attention_mask"], b["mask_pos"])

    def slot_logits(self, input_ids, attention_mask, mask_pos, inputs_embeds=None) -> torch.Tensor:
        """LM-head logits ``(B, V)`` at ``mask_pos``; ``inputs_embeds`` may replace the ids."""
        if self.causal:
            return causal_next_token_logits(self.model, input_ids, attention_mask, inputs_embeds)
        return masked_lm_logits_at(self.model, input_ids, attention_mask, mask_pos, inputs_embeds)

    def logits(self, columns: dict[str, list[str]]) -> torch.Tensor:
        b = self.encode(columns)
        words = self.slot_logits(b["input_ids"], b["attention_mask"], b["mask_pos"])  # (B, V)
        return self.verbalizer.class_logits(words, self.label_ids)  # (B, C)

    def checkpoint_spec(self) -> dict:
        return {
            "template": self.template.pattern,
            "verbalizer": self.verbalizer.spec(),
            "config": self.config.to_dict(),
        }

    @classmethod
    def from_checkpoint_spec(cls, backbone: Backbone, spec: dict) -> ClozeClassifier:
        return cls(
            backbone,
            spec["template"],
            Verbalizer.from_spec(spec["verbalizer"]),
            cls.config_class.from_dict(spec["config"]),
        )


def causal_next_token_logits(model, input_ids, attention_mask, inputs_embeds=None) -> torch.Tensor:
    """Next-token logits ``(B, V)`` after the last position of a left-padded batch."""
    out = model(
        input_ids=None if inputs_embeds is not None else input_ids,
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        logits_to_keep=1,
        use_cache=False,
    )
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
