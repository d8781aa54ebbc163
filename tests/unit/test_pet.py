"""PET: label-word cross-entropy (tuned or frozen), the auxiliary LM loss, ensembles, distillation."""

import pytest
import torch
from torch import nn

from prompt_learning import ClozeClassifier, Verbalizer, evaluate, fit, load_backbone
from prompt_learning.heads import HeadClassifier, HeadConfig
from prompt_learning.pet import (
    PETConfig,
    PET,
    PatternEnsemble,
    PETLoss,
    accuracy_weights,
    distil,
    distillation_kl,
    soft_labels,
)

V = Verbalizer({"negative": ["bad", "awful"], "positive": "good"})
T = "{text} it was {mask}."
MODELS = ["tiny-bert", "tiny-roberta", "tiny-gpt2", "tiny-llama"]


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("tune", ["all", "frozen"])
def test_before_training_pet_is_the_zero_shot_classifier(name, tune):
    texts = ["a great film", "the plot was boring and dull"]
    with torch.no_grad():
        zero = ClozeClassifier(load_backbone(name), T, V)(texts)
        pet = PET(load_backbone(name), T, V, PETConfig(tune=tune)).eval()(texts)
    torch.testing.assert_close(pet, zero, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-llama"])
def test_tuning_everything_lowers_the_loss(name, sentiment_toy):
    pet = PET(load_backbone(name), T, V)
    hist = fit(pet, sentiment_toy, steps=25, lr=3e-3, batch_size=8, progress=False)
    assert hist.final_loss < hist.loss[0] - 0.2
    assert evaluate(pet, sentiment_toy)["accuracy"] == 1.0


@pytest.mark.parametrize("name", ["tiny-roberta", "tiny-gpt2"])
def test_frozen_trains_only_the_label_word_vectors(name, sentiment_toy):
    pet = PET(load_backbone(name), T, V, PETConfig(tune="frozen"))
    hidden = pet.model.get_output_embeddings().weight.shape[1]
    assert pet.trainable_parameters() == 3 * hidden + 3  # three label words: vectors and biases
    before, words = snapshot(pet.model), pet.word_vectors.detach().clone()
    hist = fit(pet, sentiment_toy, steps=40, lr=0.1, batch_size=8, progress=False)
    after = pet.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(words, pet.word_vectors)
    assert hist.final_loss < hist.loss[0]
    pet.train()
    assert not pet.model.training


def test_unknown_tune_is_refused():
    with pytest.raises(ValueError, match="tune must be one of"):
        PET(load_backbone("tiny-bert"), T, V, PETConfig(tune="half"))


@pytest.mark.parametrize("name", MODELS)
def test_auxiliary_lm_loss_is_a_differentiable_scalar(name):
    torch.manual_seed(0)
    pet = PET(load_backbone(name), T, V)
    loss = pet.auxiliary_lm_loss(
        ["the film was a great fun story with good music", "i hate the plot"], mlm_probability=0.5
    )
    assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert pet.model.get_input_embeddings().weight.grad is not None


def test_lm_loss_with_a_frozen_backbone_is_refused():
    pet = PET(load_backbone("tiny-bert"), T, V, PETConfig(tune="frozen"))
    with pytest.raises(ValueError, match="tune='frozen' keeps fixed"):
        pet.auxiliary_lm_loss(["fun"])


def test_pet_loss_mixes_cross_entropy_and_lm_loss(sentiment_toy):
    pet = PET(load_backbone("tiny-gpt2"), T, V)
    batch = {"text": sentiment_toy["text"][:4], "label": torch.tensor(sentiment_toy["label"][:4])}
    plain = PETLoss(alpha=0.0)(pet, batch)
    mixed = PETLoss(["the film was fun", "a dull plot"], alpha=0.25, lm_batch_size=2)
    total = mixed(pet, batch)
    expected = 0.75 * plain + 0.25 * torch.tensor(mixed.last["lm"])
    torch.testing.assert_close(total, expected, atol=1e-5, rtol=1e-5)
    assert mixed.last["ce"] == pytest.approx(plain.item(), abs=1e-6)


def test_pet_loss_trains_with_fit(sentiment_toy):
    pet = PET(load_backbone("tiny-llama"), T, V)
    loss = PETLoss(sentiment_toy["text"], alpha=1e-4, lm_batch_size=2)
    hist = fit(pet, sentiment_toy, steps=25, lr=3e-3, batch_size=8, loss_fn=loss, progress=False)
    assert hist.final_loss < hist.loss[0] - 0.2 and "lm" in loss.last


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(alpha=1.0, unlabelled=["x"]), "must be in [0, 1)"),
        (dict(alpha=1e-4), "needs unlabelled texts"),
    ],
)
def test_pet_loss_refuses_bad_settings(kwargs, fragment):
    with pytest.raises(ValueError) as err:
        PETLoss(**kwargs)
    assert fragment in str(err.value)


class Fixed(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, texts):
        return self.logits.expand(len(texts), -1)


def test_ensemble_averages_probabilities_with_weights():
    a, b = Fixed([2.0, 0.0]), Fixed([0.0, 1.0])
    pa, pb = a.logits.softmax(-1), b.logits.softmax(-1)
    torch.testing.assert_close(PatternEnsemble([a, b])(["x"])[0].exp(), (pa + pb) / 2)
    torch.testing.assert_close(PatternEnsemble([a, b], weights=[3, 1])(["x"])[0].exp(), 0.75 * pa + 0.25 * pb)
    torch.testing.assert_close(PatternEnsemble([a, b], combine="logits")(["x"])[0], torch.tensor([1.0, 0.5]))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(members=[]), "at least one member"),
        (dict(members=[Fixed([0.0, 1.0])], weights=[1, 2]), "one weight per member"),
        (dict(members=[Fixed([0.0, 1.0])], weights=[0]), "not all zero"),
        (dict(members=[Fixed([0.0, 1.0])], combine="vote"), "'probs' or 'logits'"),
    ],
)
def test_ensemble_refuses_bad_settings(kwargs, fragment):
    with pytest.raises(ValueError) as err:
        PatternEnsemble(**kwargs)
    assert fragment in str(err.value)


def test_ensemble_refuses_members_with_different_classes():
    with pytest.raises(ValueError, match="disagree on the output shape"):
        PatternEnsemble([Fixed([0.0, 1.0]), Fixed([0.0, 1.0, 2.0])])(["x"])


def test_ensemble_of_pattern_models(sentiment_toy):
    b = load_backbone("tiny-bert")
    members = [
        PET(b, "{text} it was {mask}.", V, PETConfig(tune="frozen")),
        PET(b, "{mask} : {text}", V, PETConfig(tune="frozen")),
    ]
    weights = accuracy_weights(members, sentiment_toy)
    assert all(0.0 <= w <= 1.0 for w in weights)
    out = PatternEnsemble(members, weights=[w + 0.1 for w in weights])(sentiment_toy["text"])
    assert out.shape == (8, 2) and torch.allclose(out.exp().sum(-1), torch.ones(8))


def test_soft_labels_are_tempered_distributions():
    q1 = soft_labels(Fixed([2.0, 0.0]), ["x", "y"], temperature=1.0)
    q2 = soft_labels(Fixed([2.0, 0.0]), ["x", "y"], temperature=2.0)
    torch.testing.assert_close(q1[0], torch.tensor([2.0, 0.0]).softmax(-1))
    torch.testing.assert_close(q2[0], torch.tensor([1.0, 0.0]).softmax(-1))
    with pytest.raises(ValueError, match="temperature must be positive"):
        soft_labels(Fixed([2.0, 0.0]), ["x"], temperature=0)


def test_distillation_moves_the_student_to_the_teacher(sentiment_toy):
    teacher = Fixed([0.0, 0.0])
    texts = sentiment_toy["text"]
    targets = torch.tensor([[0.9, 0.1] if y == 0 else [0.2, 0.8] for y in sentiment_toy["label"]])
    student = HeadClassifier(load_backbone("tiny-bert"), 2, HeadConfig(dropout=0.0))
    before = distillation_kl(student, texts, targets)
    distil(student, texts, targets, steps=40, lr=3e-3, batch_size=8, progress=False)
    assert distillation_kl(student, texts, targets) < before / 2
    assert teacher(["x"]).shape == (1, 2)


def test_distil_refuses_mismatched_or_unnormalised_targets():
    student = HeadClassifier(load_backbone("tiny-bert"), 2)
    with pytest.raises(ValueError, match="one label row per text"):
        distil(student, ["a", "b"], torch.tensor([[0.5, 0.5]]), steps=1, lr=1e-3, batch_size=1)
    with pytest.raises(ValueError, match="summing to 1"):
        distil(student, ["a"], torch.tensor([[2.0, 0.5]]), steps=1, lr=1e-3, batch_size=1)


def test_the_pet_loss_by_hand_equals_the_library(sentiment_toy):
    """Chapter 2's from-scratch cell: label-word logits in the answer slot, then cross-entropy."""
    from prompt_learning.training import classification_loss, collate

    for name in ("tiny-llama", "tiny-roberta"):
        pet = PET(load_backbone(name), T, V, PETConfig(max_length=48)).eval()
        batch = collate([sentiment_toy[i] for i in range(4)])
        word_logits = pet.word_logits(batch["text"])  # (B, V) at the slot
        class_logits = torch.stack([word_logits[:, ids].mean(-1) for ids in pet.label_ids], -1)  # (B, C)
        by_hand = torch.nn.functional.cross_entropy(class_logits, batch["label"])
        torch.testing.assert_close(by_hand, classification_loss(pet, batch))
