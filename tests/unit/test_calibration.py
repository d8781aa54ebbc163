"""Contextual calibration: a content-free input becomes uniform; the arithmetic is W = diag(p_cf)^-1."""

import pytest
import torch
from torch import nn

from prompt_learning import ClozeClassifier, Verbalizer, load_backbone
from prompt_learning.calibration import (
    CONTENT_FREE,
    CalibratedClassifier,
    CalibrationError,
    calibrate_logits,
    content_free_probs,
    prediction_shares,
)

V = Verbalizer({"negative": "bad", "positive": "good"})


class Fixed(nn.Module):
    """A method whose class logits are fixed per text: a biased prompt in miniature."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def forward(self, texts):
        return torch.tensor([self.table[t] for t in texts], dtype=torch.float)


def test_calibration_is_the_paper_formula():
    logits = torch.tensor([[0.3, 1.2, -0.5], [2.0, 0.0, 0.1]])
    p_cf = torch.tensor([0.2, 0.7, 0.1])
    p = logits.softmax(-1)
    expected = (p / p_cf) / (p / p_cf).sum(-1, keepdim=True)  # softmax(W p), W = diag(p_cf)^-1, b = 0 …
    torch.testing.assert_close(calibrate_logits(logits, p_cf).exp(), expected)  # … renormalised


def test_content_free_probabilities_average_the_inputs():
    m = Fixed({"N/A": [0.0, 0.0], "": [2.0, 0.0], "[MASK]": [0.0, 2.0]})
    p = content_free_probs(m)
    expected = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]]).softmax(-1).mean(0)
    torch.testing.assert_close(p, expected)


def test_a_biased_prompt_becomes_balanced():
    """Everything leans positive; once the lean of 'N/A' is divided out, the evidence decides."""
    m = Fixed({"N/A": [0.0, 3.0], "meh film": [0.0, 2.0], "fine film": [0.0, 4.0]})
    calibrated = CalibratedClassifier(m, content_free=["N/A"])
    assert prediction_shares(m(["meh film", "fine film"])).tolist() == [0.0, 1.0]
    out = calibrated(["N/A", "meh film", "fine film"])
    torch.testing.assert_close(out[0].exp(), torch.tensor([0.5, 0.5]))  # content-free → uniform
    assert out[1].argmax() == 0 and out[2].argmax() == 1


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-roberta", "tiny-gpt2", "tiny-llama"])
def test_wrapping_a_cloze_classifier_on_mlm_and_causal(name):
    clf = ClozeClassifier(load_backbone(name), "{text} it was {mask}.", V)
    calibrated = CalibratedClassifier(clf, content_free=["N/A"])
    with torch.no_grad():
        out = calibrated(["N/A", "a great film"])
    assert out.shape == (2, 2)
    torch.testing.assert_close(out[0].exp(), torch.tensor([0.5, 0.5]), atol=1e-5, rtol=1e-5)
    assert calibrated.p_cf.shape == (2,) and torch.isclose(calibrated.p_cf.sum(), torch.tensor(1.0))


def test_the_default_inputs_are_zhao_et_al():
    assert CONTENT_FREE == ("N/A", "", "[MASK]")
    clf = ClozeClassifier(load_backbone("tiny-bert"), "{text} it was {mask}.", V)
    assert CalibratedClassifier(clf).p_cf.shape == (2,)


def test_two_text_templates_get_content_free_text_in_each_slot():
    clf = ClozeClassifier(
        load_backbone("tiny-bert"), "{text_a} ? {mask} , {text_b}", Verbalizer({"no": "no", "yes": "yes"})
    )
    calibrated = CalibratedClassifier(clf, content_free=["N/A"])
    with torch.no_grad():
        out = calibrated({"text_a": ["N/A"], "text_b": ["N/A"]})
    torch.testing.assert_close(out[0].exp(), torch.tensor([0.5, 0.5]), atol=1e-5, rtol=1e-5)


def test_recalibrate_follows_a_changed_method():
    m = Fixed({"N/A": [0.0, 3.0]})
    calibrated = CalibratedClassifier(m, content_free=["N/A"])
    m.table["N/A"] = [3.0, 0.0]
    assert calibrated.recalibrate()[0] > 0.9


@pytest.mark.parametrize("bad", [[], "N/A"])
def test_content_free_must_be_a_list_of_strings(bad):
    with pytest.raises(CalibrationError, match="non-empty list"):
        CalibratedClassifier(Fixed({}), content_free=bad)


def test_class_count_mismatch_is_refused():
    with pytest.raises(CalibrationError, match="same method"):
        calibrate_logits(torch.zeros(2, 3), torch.tensor([0.5, 0.5]))


def test_prediction_shares_count_each_class():
    logits = torch.tensor([[0.0, 1.0], [0.0, 2.0], [3.0, 0.0], [0.0, 1.0]])
    assert prediction_shares(logits).tolist() == [0.25, 0.75]
