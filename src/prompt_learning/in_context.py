"""In-context learning (Brown et al. 2020): the training examples go into the prompt, not the weights.

A k-shot prompt is k filled-in templates (*demonstrations*) followed by the query's template,
so in-context learning is cloze classification with a longer template. Nothing is trained:

    Review: An ugly, pointless, stupid movie.
    Sentiment: negative

    Review: <the query>
    Sentiment: ___
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset

from .backbones import Backbone
from .cloze import ClozeClassifier
from .templates import Template
from .verbalizers import Verbalizer


def sample_demonstrations(pool: Dataset, k: int, seed: int) -> Dataset:
    """``k`` demonstrations drawn at random from ``pool`` (any classes), fixed by ``seed``."""
    if k < 0 or k > len(pool):
        raise ValueError(f"k={k} demonstrations: choose 0 <= k <= {len(pool)} (the pool size)")
    rng = np.random.default_rng(seed)
    return pool.select(rng.choice(len(pool), k, replace=False).tolist())


def in_context_template(template: Template, verbalizer: Verbalizer, demonstrations: Dataset,
                        separator: str = "\n\n") -> Template:
    """One template whose fixed text is the demonstrations, each answered with its label word."""
    def escape(s: str) -> str:
        return s.replace("{", "{{").replace("}", "}}")

    shots = [escape(template.fill(verbalizer.words[label][0], text=text))
             for text, label in zip(demonstrations["text"], demonstrations["label"])]
    return Template(separator.join([*shots, template.pattern]))


def in_context_classifier(backbone: Backbone, template: Template | str, verbalizer: Verbalizer,
                          demonstrations: Dataset, max_length: int = 1024) -> ClozeClassifier:
    """A :class:`ClozeClassifier` whose prompt starts with ``demonstrations``."""
    template = Template(template) if isinstance(template, str) else template
    return ClozeClassifier(backbone, in_context_template(template, verbalizer, demonstrations),
                           verbalizer, max_length=max_length)
