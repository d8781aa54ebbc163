"""load_backbone: tiny test models, clear errors for unknown or unreachable names."""

import pytest
import torch

from prompt_learning.backbones import BackboneError, load_backbone
from prompt_learning.tiny import TINY


@pytest.mark.parametrize("name", TINY)
def test_tiny_backbones_build_and_run(name):
    b = load_backbone(name)
    batch = b.tokenizer(["the film was great", "bad"], return_tensors="pt", padding=True)
    with torch.no_grad():
        if b.kind == "seq2seq":
            out = b.model(**batch, decoder_input_ids=batch["input_ids"][:, :2])
        else:
            out = b.model(**batch)
    assert out.logits.shape[:2] == batch["input_ids"].shape[:2] or b.kind == "seq2seq"
    assert b.kind == {"tiny-bert": "masked-lm", "tiny-roberta": "masked-lm", "tiny-gpt2": "causal-lm",
                      "tiny-llama": "causal-lm", "tiny-bart": "seq2seq"}[name]


def test_tiny_is_deterministic():
    a, b = load_backbone("tiny-llama").model, load_backbone("tiny-llama").model
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_tiny_llama_uses_grouped_query_attention():
    cfg = load_backbone("tiny-llama").config
    assert cfg.num_key_value_heads < cfg.num_attention_heads


def test_causal_tokenizers_pad_left():
    # the next-token logits of a batch are read at the last position: padding must be on the left
    assert load_backbone("tiny-llama").tokenizer.padding_side == "left"
    assert load_backbone("tiny-bert").tokenizer.padding_side == "right"


def test_unknown_name_lists_the_choices():
    with pytest.raises(BackboneError, match="smollm2-135m.*tiny-bert"):
        load_backbone("no-such-model")


def test_hub_name_offline_names_the_embedded_alternative(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match="smollm2-135m"):
        load_backbone("gpt2-medium")
    with pytest.raises(BackboneError, match="minilm-l6"):
        load_backbone("roberta-large")
