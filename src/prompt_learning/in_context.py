"""In-context learning (Brown et al. 2020): the training examples go into the prompt, not the weights.

A k-shot prompt is k filled-in templates (*demonstrations*) followed by the query's template,
so in-context learning is cloze classification with a longer template. Nothing is trained:

    Review: An ugly, pointless, stupid movie.
    Sentiment: negative

    Review: <the query>
    Sentiment: ___

Every query shares the demonstrations, so a causal LM runs them once: their keys and values
are cached and each batch of queries attends to that cache (``InContextClassifier``). The
result is the same as running the whole prompt for every query, at a fraction of the cost.
"""

from __future__ import annotations

import numpy as np
import torch
from datasets import Dataset
from transformers import DynamicCache

from .backbones import Backbone
from .cloze import ClozeClassifier
from .errors import InputError
from .method import PromptLearningConfig
from .positions import max_positions, position_ids
from .templates import Template, pad_rows, special_tokens_around
from .verbalizers import Verbalizer


def sample_demonstrations(pool: Dataset, k: int, seed: int) -> Dataset:
    """``k`` demonstrations drawn at random from ``pool`` (any classes), fixed by ``seed``."""
    if k < 0 or k > len(pool):
        raise InputError(f"k={k} demonstrations: choose 0 <= k <= {len(pool)} (the pool size)")
    rng = np.random.default_rng(seed)
    return pool.select(rng.choice(len(pool), k, replace=False).tolist())


def in_context_template(
    template: Template, verbalizer: Verbalizer, demonstrations: Dataset, separator: str = "\n\n"
) -> Template:
    """One template whose fixed text is the demonstrations, each answered with its label word."""

    def escape(s: str) -> str:
        return s.replace("{", "{{").replace("}", "}}")

    shots = [
        escape(template.fill(verbalizer.words[label][0], text=text))
        for text, label in zip(demonstrations["text"], demonstrations["label"])
    ]
    return Template(separator.join([*shots, template.pattern]))


class InContextClassifier(ClozeClassifier):
    """A causal-LM :class:`~prompt_learning.cloze.ClozeClassifier` that computes the shared demonstrations once.

    The prompt's first ``P`` tokens (special tokens and the demonstrations) are identical for
    every query; their per-layer keys/values are computed on the first call and reused. Each
    query then runs only its own tokens, at positions ``P, P+1, …``.
    """

    def __init__(
        self,
        backbone: Backbone,
        template: Template,
        verbalizer: Verbalizer,
        config: PromptLearningConfig | None = None,
    ):
        super().__init__(backbone, template, verbalizer, config)
        if not self.causal:
            raise InputError(
                "InContextClassifier caches a causal LM's demonstrations; "
                "use ClozeClassifier with the in-context template for a masked LM"
            )
        first = self.template.pieces[0]
        head, _ = special_tokens_around(self.tokenizer)
        body = (
            self.tokenizer(first.value, add_special_tokens=False)["input_ids"]
            if first.kind == "literal"
            else []
        )
        self.shared_ids = head + body
        self._kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    @torch.no_grad()
    def _shared_cache(self, batch_size: int, device) -> DynamicCache:
        if self._kv is None or self._kv[0][0].device != device:
            ids = torch.tensor([self.shared_ids], device=device)
            out = self.model(input_ids=ids, use_cache=True)
            self._kv = [(layer.keys, layer.values) for layer in out.cache.layers]  # (1, kv_heads, P, hd)
        return DynamicCache(
            ddp_cache_data=[
                (k.expand(batch_size, -1, -1, -1), v.expand(batch_size, -1, -1, -1)) for k, v in self._kv
            ],
            config=self.model.config,
        )

    def logits(self, columns: dict[str, list[str]]) -> torch.Tensor:
        return self.verbalizer.class_logits(self._query_logits(columns["text"]), self.label_ids)  # (B, C)

    def word_logits(self, texts) -> torch.Tensor:
        return self._query_logits(list(texts))

    def _query_logits(self, texts: list[str]) -> torch.Tensor:
        rows = self.template.rows(self.tokenizer, {"text": texts}, self.max_length, causal=True)
        P = len(self.shared_ids)
        assert all(ids[:P] == self.shared_ids for ids, _, _ in rows), "demonstrations must be shared"
        q = pad_rows([(ids[P:], pos - P) for ids, _, pos in rows], self.tokenizer.pad_token_id, left=True)
        device = self.model.get_input_embeddings().weight.device
        q_mask = q["attention_mask"].to(device)  # (B, T)
        B = q_mask.shape[0]
        out = self.model(
            input_ids=q["input_ids"].to(device),
            attention_mask=torch.cat([torch.ones(B, P, dtype=q_mask.dtype, device=device), q_mask], 1),
            position_ids=position_ids(q_mask, offset=P),
            cache=self._shared_cache(B, device),
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1]  # (B, V)


def in_context_classifier(
    backbone: Backbone,
    template: Template | str,
    verbalizer: Verbalizer,
    demonstrations: Dataset,
    max_length: int | None = None,
) -> ClozeClassifier:
    """A classifier whose prompt starts with ``demonstrations`` (cached for a causal LM).

    ``max_length`` (default: the backbone's positions, at most 1024) bounds demonstrations and query
    together; only the query is ever truncated.
    """
    template = Template(template) if isinstance(template, str) else template
    full = in_context_template(template, verbalizer, demonstrations)
    if max_length is None:
        max_length = min(1024, max_positions(backbone.model) or 1024)
    config = PromptLearningConfig(max_length=max_length)
    if backbone.kind == "causal-lm" and len(demonstrations) > 0:
        return InContextClassifier(backbone, full, verbalizer, config)
    return ClozeClassifier(backbone, full, verbalizer, config)
