"""The library's ``>>>`` examples run as doctests (``make unit``), with the package's public names
in scope as a reader's ``from prompt_learning import *`` would give them."""

import pytest


@pytest.fixture(autouse=True)
def _public_names(doctest_namespace, monkeypatch):
    import torch
    from datasets import ClassLabel, Dataset, Features, Value

    import prompt_learning

    monkeypatch.setenv("PROMPT_LEARNING_CPU_BF16", "0")  # the same numbers on every CPU
    doctest_namespace.update({name: getattr(prompt_learning, name) for name in prompt_learning.__all__})
    doctest_namespace["torch"] = torch
    # ``train``: the few labelled examples an example trains or searches on
    texts = ["a great film", "an awful movie", "good fun", "boring and dull"]
    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    doctest_namespace["train"] = Dataset.from_dict({"text": texts, "label": [1, 0, 1, 0]}, features=features)
