"""Cloze classification: a template makes the task a fill-in-the-blank, the LM head fills it.

``ClozeClassifier(backbone, template, verbalizer)`` maps texts to class logits ``(B, C)`` by
reading the pretrained LM head's logits for the label words in the answer slot:

* a **masked LM** (BERT, RoBERTa) sees the mask token anywhere in the template and predicts it;
* a **causal LM** (GPT-2, Llama, SmolLM2) predicts the next token after the template's text, so
  the slot must be at the end (see :attr:`~prompt_learning.templates.Template.mask_at_end`).

Only the logits that are needed are computed (:mod:`prompt_learning.readout`): one position for a
causal LM, the mask positions for a masked LM. No parameters are added: zero-shot, this *is* the model.
"""

from __future__ import annotations

import torch

from .backbones import Backbone
from .method import InputError, PromptLearningConfig, PromptMethod, check_inputs
from .positions import check_positions
from .readout import answer_logits, check_lm_backbone
from .templates import Template
from .verbalizers import Verbalizer


class ClozeClassifier(PromptMethod):
    """Texts → class logits through a template, the backbone's LM head and a verbalizer.

    >>> clf = ClozeClassifier(load_backbone("tiny-bert"), Template("{text} It was {mask}."),
    ...                       Verbalizer({"negative": "bad", "positive": "good"}))
    >>> clf(["a fine film"]).shape
    torch.Size([1, 2])
    """

    error_class: type[Exception] = InputError  # what a backbone or template it cannot read raises

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
        self.template = Template(template) if isinstance(template, str) else template
        check_lm_backbone(
            backbone, self.template, f"a {type(self).__name__}", self.error_class
        )  # before any compute
        if config.num_virtual_tokens:
            raise InputError(
                f"{type(self).__name__} adds no virtual tokens; set num_virtual_tokens=0 or use PromptTuning"
            )
        self.verbalizer = verbalizer
        self.causal = backbone.kind == "causal-lm"
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
        return answer_logits(self.model, self.causal, b["input_ids"], b["attention_mask"], b["mask_pos"])

    def logits(self, columns: dict[str, list[str]]) -> torch.Tensor:
        b = self.encode(columns)
        words = answer_logits(
            self.model, self.causal, b["input_ids"], b["attention_mask"], b["mask_pos"]
        )  # (B, V)
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
