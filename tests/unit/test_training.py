"""The training loop: learns, is deterministic, records history, refuses nonsense."""

import pytest
import torch

from prompt_learning import PET, ClozeClassifier, PETConfig, Verbalizer, evaluate, fit, load_backbone


def make(name="tiny-llama"):
    return PET(
        load_backbone(name),
        "Review: {text} Sentiment: {mask}",
        Verbalizer({"negative": "negative", "positive": "positive"}),
        PETConfig(max_length=48),
    )


def test_fit_learns_the_training_set(sentiment_toy):
    clf = make()
    before = evaluate(clf, sentiment_toy)["accuracy"]
    hist = fit(clf, sentiment_toy, steps=30, lr=1e-2, batch_size=4, seed=0, progress=False)
    assert hist.loss[-1] < hist.loss[0] / 10
    assert before < 1.0  # a random tiny model does not know the answers yet (else this test proves nothing)
    assert evaluate(clf, sentiment_toy)["accuracy"] == 1.0
    assert hist.step == list(range(1, 31)) and hist.seconds > 0


def test_fit_is_deterministic(sentiment_toy):
    h1 = fit(make(), sentiment_toy, steps=5, lr=1e-3, batch_size=3, seed=7, progress=False)
    h2 = fit(make(), sentiment_toy, steps=5, lr=1e-3, batch_size=3, seed=7, progress=False)
    h3 = fit(make(), sentiment_toy, steps=5, lr=1e-3, batch_size=3, seed=8, progress=False)
    assert h1.loss == h2.loss and h1.loss != h3.loss


def test_fit_records_evaluations(sentiment_toy):
    hist = fit(
        make(),
        sentiment_toy,
        steps=6,
        lr=1e-3,
        batch_size=4,
        eval_data=sentiment_toy,
        eval_every=3,
        progress=False,
    )
    assert hist.eval_step == [3, 6] and all(0 <= a <= 1 for a in hist.eval_accuracy)
    assert [c.mean() for c in hist.eval_correct] == hist.eval_accuracy  # per-item outcomes kept


def test_a_checkpoint_of_a_longer_run_is_the_shorter_run(sentiment_toy):
    """At a constant rate, step s of an s'-step run is the s-step run: what an accuracy-against-steps
    curve read off one run stands for."""
    short = fit(
        make(),
        sentiment_toy,
        steps=4,
        lr=1e-3,
        batch_size=3,
        seed=2,
        eval_data=sentiment_toy,
        eval_every=4,
        progress=False,
    )
    long = fit(
        make(),
        sentiment_toy,
        steps=8,
        lr=1e-3,
        batch_size=3,
        seed=2,
        eval_data=sentiment_toy,
        eval_every=4,
        progress=False,
    )
    assert long.loss[:4] == short.loss
    assert (long.eval_correct[0] == short.eval_correct[0]).all()


def test_fit_refuses_a_frozen_model(sentiment_toy):
    clf = ClozeClassifier(
        load_backbone("tiny-llama"),
        "Review: {text} Sentiment: {mask}",
        Verbalizer({"negative": "negative", "positive": "positive"}),
    )  # zero-shot: nothing trains
    assert clf.trainable_parameters() == 0
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(clf, sentiment_toy, steps=1, lr=1e-3, batch_size=2, progress=False)


def test_warmup_schedule_trains(sentiment_toy):
    clf = make("tiny-bert")
    hist = fit(clf, sentiment_toy, steps=8, lr=1e-2, batch_size=4, warmup=0.25, progress=False)
    assert torch.isfinite(torch.tensor(hist.loss)).all()


def test_two_fits_with_different_precisions_in_one_process(sentiment_toy):
    """No process-wide precision state: bf16 autocast, then fp32, then bf16 again, in one process."""
    runs = [
        fit(make(), sentiment_toy, steps=2, lr=1e-3, batch_size=4, mixed_precision=p, progress=False)
        for p in ("bf16", "no", "bf16")
    ]
    assert [h.precision for h in runs] == ["bf16", "no", "bf16"]
    assert runs[0].loss == runs[2].loss and runs[0].loss != runs[1].loss  # the precision really changed


@pytest.mark.cpu_bf16  # reads the switch and the host flags itself
def test_auto_precision_follows_the_hardware(monkeypatch):
    from prompt_learning import precision

    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)  # AMX-BF16 / AVX512-BF16
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)  # bf16 would be slower there
    assert precision.resolve_precision("auto", "cpu") == "no"
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setenv("PROMPT_LEARNING_CPU_BF16", "0")
    assert precision.resolve_precision("auto", "cpu") == "no"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # a T4
    assert precision.auto_precision("cuda") == "fp16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # an A100
    assert precision.auto_precision("cuda") == "bf16"
    with pytest.raises(ValueError, match="fp16 autocast is for GPUs"):
        precision.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="not one of"):
        precision.resolve_precision("half", "cpu")


def test_fp16_gets_a_loss_scaler_and_the_others_do_not():
    from prompt_learning import precision

    assert not precision.grad_scaler("cpu", "no").is_enabled()
    assert not precision.grad_scaler("cpu", "bf16").is_enabled()


def test_fit_uses_the_fused_adamw_where_it_can_and_it_updates_as_the_default_does():
    from prompt_learning.training import fused_adamw

    a, b = torch.nn.Parameter(torch.randn(5)), torch.nn.Parameter(torch.randn(5))
    assert fused_adamw([a, b])
    assert not fused_adamw([a, torch.zeros(2, dtype=torch.float64)])  # a dtype the kernel does not take
    runs = []
    for fused in (None, True):
        p = torch.nn.Parameter(torch.arange(6.0))
        opt = torch.optim.AdamW([p], lr=0.1, weight_decay=0.01, fused=fused)
        for step in range(3):
            p.grad = torch.full_like(p, 0.5 * (step + 1))
            opt.step()
        runs.append(p.detach().clone())
    torch.testing.assert_close(runs[0], runs[1], atol=1e-6, rtol=1e-6)


def test_fit_asks_for_the_fused_kernel(monkeypatch, sentiment_toy):
    seen, real = {}, torch.optim.AdamW

    def recording(params, **kwargs):
        seen.update(kwargs)
        return real(params, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", recording)
    pet = PET(
        load_backbone("tiny-gpt2"),
        "{text} It was {mask}.",
        Verbalizer({"negative": "bad", "positive": "good"}),
        PETConfig(),
    )
    fit(pet, sentiment_toy, steps=1, lr=1e-3, batch_size=4, mixed_precision="no", progress=False)
    assert seen["fused"] is True
