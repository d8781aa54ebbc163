"""PET on the embedded backbones: the BPE space trap, the biased seed pattern, calibration, PET vs a head."""

import copy

import numpy as np
import pytest
import torch

from prompt_learning import (
    ClozeClassifier,
    Verbalizer,
    VerbalizerError,
    evaluate,
    few_shot,
    fit,
    load_backbone,
    movie_reviews,
    stratified_head,
)
from prompt_learning.calibration import CalibratedClassifier, calibrate_logits, prediction_shares
from prompt_learning.heads import HeadClassifier, HeadConfig
from prompt_learning.method import PromptLearningConfig
from prompt_learning.pet import PET, PETConfig

pytestmark = pytest.mark.embedded
SEED_PATTERN = "{text} It was {mask}."
SEED_WORDS = Verbalizer({"negative": "terrible", "positive": "great"})


@pytest.fixture(scope="module")
def smollm2():
    return load_backbone("smollm2-135m")


@pytest.fixture(scope="module")
def reviews():
    return movie_reviews()


@pytest.fixture(scope="module")
def test_set(reviews):
    test = stratified_head(reviews["test"], 80)
    return test.select(np.argsort([len(t) for t in test["text"]]).tolist())


def test_smollm2_label_words_depend_on_the_space_before_the_slot(smollm2):
    ids = ClozeClassifier(smollm2, SEED_PATTERN, SEED_WORDS).label_ids
    assert [smollm2.tokenizer.convert_ids_to_tokens(i) for i in ids] == [["Ġterrible"], ["Ġgreat"]]
    with pytest.raises(VerbalizerError, match=r"'terrible'.*\['ter', 'rible'\].*one token \['Ġterrible'\]"):
        ClozeClassifier(smollm2, "{text} It was:{mask}", SEED_WORDS)


def test_chinese_label_words_are_byte_pieces_for_smollm2(smollm2):
    with pytest.raises(VerbalizerError, match="'差'.*2 tokens"):
        Verbalizer({"negative": "差", "positive": "好"}).token_ids(smollm2.tokenizer, space_before=False)


def test_the_seed_pattern_is_biased_and_calibration_removes_the_bias(smollm2, test_set):
    clf = ClozeClassifier(smollm2, SEED_PATTERN, SEED_WORDS, PromptLearningConfig(max_length=48))
    zero = evaluate(clf, test_set, batch_size=40)
    assert prediction_shares(zero["logits"])[1] > 0.8  # "great" wins almost always
    calibrated = calibrate_logits(zero["logits"], CalibratedClassifier(clf).p_cf)
    share = prediction_shares(calibrated)[1]
    accuracy = (calibrated.argmax(-1) == torch.tensor(test_set["label"])).float().mean()
    assert 0.2 < share < 0.8 and accuracy > zero["accuracy"] + 0.1


def test_pet_beats_a_classifier_head_with_16_examples_per_class(smollm2, reviews, test_set):
    train = few_shot(reviews["pool"], 16, seed=0)
    pet = PET(copy.deepcopy(smollm2), SEED_PATTERN, SEED_WORDS, PETConfig(max_length=48))
    fit(pet, train, steps=8, lr=2e-5, batch_size=8, seed=0, progress=False)
    head = HeadClassifier(load_backbone("minilm-l6"), 2, HeadConfig(max_length=48))
    fit(head, train, steps=20, lr=1e-4, batch_size=8, seed=0, progress=False)
    pet_acc = evaluate(pet, test_set, 40)["accuracy"]
    head_acc = evaluate(head, test_set, 40)["accuracy"]
    assert pet_acc > 0.7 and pet_acc > head_acc + 0.05, (pet_acc, head_acc)
