"""The training loop: learns, is deterministic, records history, refuses nonsense."""

import pytest
import torch

from prompt_learning import ClozeClassifier, Verbalizer, evaluate, fit, load_backbone


def make(name="tiny-llama"):
    return ClozeClassifier(load_backbone(name), "Review: {text} Sentiment: {mask}",
                           Verbalizer({"negative": "negative", "positive": "positive"}))


def test_fit_learns_the_training_set(sentiment_toy):
    clf = make()
    before = evaluate(clf, sentiment_toy)["accuracy"]
    hist = fit(clf, sentiment_toy, steps=30, lr=1e-2, batch_size=4, seed=0, progress=False)
    assert hist.loss[-1] < hist.loss[0] / 10
    assert evaluate(clf, sentiment_toy)["accuracy"] == 1.0 > before or before == 1.0
    assert hist.step == list(range(1, 31)) and hist.seconds > 0


def test_fit_is_deterministic(sentiment_toy):
    h1 = fit(make(), sentiment_toy, steps=5, lr=1e-3, batch_size=3, seed=7, progress=False)
    h2 = fit(make(), sentiment_toy, steps=5, lr=1e-3, batch_size=3, seed=7, progress=False)
    h3 = fit(make(), sentiment_toy, steps=5, lr=1e-3, batch_size=3, seed=8, progress=False)
    assert h1.loss == h2.loss and h1.loss != h3.loss


def test_fit_records_evaluations(sentiment_toy):
    hist = fit(make(), sentiment_toy, steps=6, lr=1e-3, batch_size=4, eval_data=sentiment_toy,
               eval_every=3, progress=False)
    assert hist.eval_step == [3, 6] and all(0 <= a <= 1 for a in hist.eval_accuracy)


def test_fit_refuses_a_frozen_model(sentiment_toy):
    clf = make()
    for p in clf.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(clf, sentiment_toy, steps=1, lr=1e-3, batch_size=2, progress=False)


def test_warmup_schedule_trains(sentiment_toy):
    clf = make("tiny-bert")
    hist = fit(clf, sentiment_toy, steps=8, lr=1e-2, batch_size=4, warmup=0.25, progress=False)
    assert torch.isfinite(torch.tensor(hist.loss)).all()
