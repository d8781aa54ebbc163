"""Shared fixtures: offline hub, tiny backbones, a tiny labelled dataset."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
from datasets import ClassLabel, Dataset, Features, Value

from prompt_learning.backbones import load_backbone


@pytest.fixture(autouse=True)
def fp32_on_cpu(request, monkeypatch):
    """Results must not depend on the host CPU: the library's CPU bf16 rule is off in every test
    unless the test opts in with ``@pytest.mark.cpu_bf16`` (the host's bf16 flags then decide)."""
    if request.node.get_closest_marker("cpu_bf16") is None:
        monkeypatch.setenv("PROMPT_LEARNING_CPU_BF16", "0")


@pytest.fixture
def tiny():
    """Load a tiny random backbone by name (fresh weights each call)."""
    return load_backbone


@pytest.fixture
def sentiment_toy() -> Dataset:
    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    texts = [
        "a great film",
        "an awful movie",
        "good fun",
        "boring and dull",
        "i loved it",
        "i hate this plot",
        "wonderful music",
        "a terrible story",
    ]
    return Dataset.from_dict({"text": texts, "label": [1, 0, 1, 0, 1, 0, 1, 0]}, features=features)
