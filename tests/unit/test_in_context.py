"""In-context learning: the cached demonstrations give exactly the uncached prompt's logits."""

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from prompt_learning.method import PromptLearningConfig
from prompt_learning import ClozeClassifier, Template, Verbalizer, load_backbone
from prompt_learning.in_context import (
    InContextClassifier,
    in_context_classifier,
    in_context_template,
    sample_demonstrations,
)

V = Verbalizer({"negative": "negative", "positive": "positive"})
T = Template("Review: {text} Sentiment: {mask}")


@pytest.fixture
def demos():
    f = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    return Dataset.from_dict(
        {"text": ["great film {sic}", "awful movie , i hate it"], "label": [1, 0]}, features=f
    )


def test_template_holds_the_answered_demonstrations(demos):
    t = in_context_template(T, V, demos)
    assert t.fill("?", text="q") == (
        "Review: great film {sic} Sentiment: positive\n\n"
        "Review: awful movie , i hate it Sentiment: negative\n\nReview: q Sentiment: ?"
    )


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_cached_demonstrations_equal_the_full_prompt(name, demos):
    b = load_backbone(name)
    full = ClozeClassifier(b, in_context_template(T, V, demos), V, PromptLearningConfig(max_length=128))
    fast = in_context_classifier(b, T, V, demos, max_length=128)
    assert isinstance(fast, InContextClassifier)
    queries = ["the plot was boring and dull", "fun", "i loved the music"]
    with torch.no_grad():
        torch.testing.assert_close(fast.word_logits(queries), full.word_logits(queries), atol=1e-5, rtol=1e-5)


def test_zero_demonstrations_is_plain_cloze():
    b = load_backbone("tiny-llama")
    clf = in_context_classifier(b, T, V, sample_demonstrations(_pool(), 0, seed=0))
    assert type(clf) is ClozeClassifier


def test_sample_demonstrations_bounds():
    with pytest.raises(ValueError, match="0 <= k"):
        sample_demonstrations(_pool(), 99, seed=0)


def _pool():
    f = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    return Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]}, features=f)
