"""The classifier-head baseline: shapes, pooling, full fine-tuning vs head only."""

import pytest
import torch

from prompt_learning import fit, load_backbone
from prompt_learning.heads import HeadClassifier, HeadConfig


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-roberta", "tiny-gpt2", "tiny-llama"])
def test_shapes_and_default_pooling(name):
    clf = HeadClassifier(load_backbone(name), 5)
    assert clf.pooling == ("last" if name in ("tiny-gpt2", "tiny-llama") else "mean")
    assert clf(["a great film", "fun"]).shape == (2, 5)


def test_full_fine_tuning_lowers_the_loss_and_changes_the_backbone(sentiment_toy):
    clf = HeadClassifier(load_backbone("tiny-bert"), 2, HeadConfig(dropout=0.0))
    before = snapshot(clf.encoder)
    hist = fit(clf, sentiment_toy, steps=30, lr=3e-3, batch_size=8, progress=False)
    assert hist.final_loss < hist.loss[0] - 0.2
    after = clf.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_head_only_leaves_the_backbone_unchanged(sentiment_toy):
    clf = HeadClassifier(load_backbone("tiny-bert"), 2, HeadConfig(train_backbone=False))
    before, head = snapshot(clf.encoder), clf.head.weight.detach().clone()
    assert clf.trainable_parameters() == clf.head.weight.numel() + clf.head.bias.numel()
    fit(clf, sentiment_toy, steps=5, lr=1e-2, batch_size=4, progress=False)
    after = clf.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(head, clf.head.weight)
    clf.train()
    assert not clf.encoder.training  # a frozen backbone keeps dropout off


def test_mean_pooling_ignores_padding():
    clf = HeadClassifier(load_backbone("tiny-bert"), 2).eval()
    with torch.no_grad():
        together = clf.pooled({"text": ["a great film and a fun story", "fun"]})
        alone = clf.pooled({"text": ["fun"]})
    torch.testing.assert_close(together[1:], alone, atol=1e-5, rtol=1e-5)


def test_last_token_pooling_ignores_left_padding():
    clf = HeadClassifier(load_backbone("tiny-llama"), 2).eval()
    with torch.no_grad():
        together = clf.pooled({"text": ["a great film and a fun story", "fun"]})
        alone = clf.pooled({"text": ["fun"]})
    torch.testing.assert_close(together[1:], alone, atol=1e-5, rtol=1e-5)


def test_cls_pooling_reads_the_first_token():
    clf = HeadClassifier(load_backbone("tiny-bert"), 2, HeadConfig(pooling="cls")).eval()
    assert clf.pooling == "first"
    enc = clf.encode({"text": ["a great film"]})
    with torch.no_grad():
        torch.testing.assert_close(
            clf.pooled({"text": ["a great film"]}), clf.encoder(**enc).last_hidden_state[:, 0]
        )


def test_text_pairs_are_encoded_together():
    clf = HeadClassifier(load_backbone("tiny-bert"), 3)
    enc = clf.encode({"text_a": ["the film was fun"], "text_b": ["it was good"]})
    assert clf.tokenizer.convert_ids_to_tokens(enc["input_ids"][0]).count("[SEP]") == 2
    assert clf({"text_a": ["the film was fun"], "text_b": ["it was good"]}).shape == (1, 3)


@pytest.mark.parametrize(
    "name, labels, kwargs, fragment",
    [
        ("tiny-bart", 2, {}, "encoder-decoder"),
        ("tiny-bert", 1, {}, "at least two classes"),
        ("tiny-bert", 2, dict(pooling="max"), "pooling must be one of"),
        ("tiny-bert", 2, dict(pooling="last"), "causal LM"),
        ("tiny-bert", "negative", {}, "list of class names"),
    ],
)
def test_bad_configurations_are_refused(name, labels, kwargs, fragment):
    with pytest.raises(ValueError) as err:
        HeadClassifier(load_backbone(name), labels, HeadConfig(**kwargs))
    assert fragment in str(err.value)


def test_the_head_starts_from_its_seed_not_the_global_random_state():
    def weights(seed, noise):
        torch.manual_seed(noise)
        return HeadClassifier(load_backbone("tiny-bert"), 2, HeadConfig(seed=seed)).head.weight.detach()

    assert torch.equal(weights(0, noise=1), weights(0, noise=2))
    assert not torch.equal(weights(0, noise=1), weights(1, noise=1))
