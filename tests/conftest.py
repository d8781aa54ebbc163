"""Shared fixtures: offline hub, tiny backbones, a tiny labelled dataset."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402
from datasets import ClassLabel, Dataset, Features, Value  # noqa: E402

from prompt_learning.backbones import load_backbone  # noqa: E402


@pytest.fixture
def tiny():
    """Load a tiny random backbone by name (fresh weights each call)."""
    return load_backbone


@pytest.fixture
def sentiment_toy() -> Dataset:
    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    texts = ["a great film", "an awful movie", "good fun", "boring and dull", "i loved it",
             "i hate this plot", "wonderful music", "a terrible story"]
    return Dataset.from_dict({"text": texts, "label": [1, 0, 1, 0, 1, 0, 1, 0]}, features=features)
