"""The prompt playground: filled when built, follows its boxes, shows errors, renders statically."""

import numpy as np
import pytest
from IPython.display import HTML, Image

from prompt_learning import load_backbone, widgets
from prompt_learning.widgets import PromptPlayground, label_word_probabilities, parse_words, prompt_playground

SENTENCES = ["a great film", "the plot was boring and dull"]


@pytest.mark.parametrize(
    "name, template", [("tiny-gpt2", "{text} it was {mask}."), ("tiny-bert", "it was {mask} : {text}")]
)
def test_probabilities_are_a_distribution_per_sentence(name, template):
    words = {"negative": "bad, awful", "positive": "good"}
    table = label_word_probabilities(load_backbone(name), template, words, SENTENCES)
    assert list(table.columns) == ["negative", "positive"] and list(table.index) == SENTENCES
    assert np.allclose(table.sum(1).values, 1.0, atol=1e-5) and (table.values > 0).all()


def test_parse_words_splits_on_commas():
    assert parse_words(" great,good , ") == ["great", "good"]


def test_the_output_area_is_filled_at_build_time():
    pg = PromptPlayground(
        load_backbone("tiny-gpt2"),
        SENTENCES,
        "{text} it was {mask}.",
        {"negative": "bad", "positive": "good"},
    )
    kinds = [set(o["data"]) for o in pg.output.outputs]
    assert any("image/png" in k for k in kinds) and any("text/html" in k for k in kinds)
    assert pg.table.shape == (2, 2) and pg.error is None


def test_editing_a_box_recomputes():
    pg = PromptPlayground(
        load_backbone("tiny-gpt2"),
        SENTENCES,
        "{text} it was {mask}.",
        {"negative": "bad", "positive": "good"},
    )
    before = pg.table.copy()
    pg.word_boxes["positive"].value = "great"
    assert not before.equals(pg.table)
    pg.template_box.value = "{text} the film was {mask}."
    assert pg.table is not None and "the film was" in pg.title


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("template", "{text} it was great.", "exactly one {mask}"),
        ("template", "it was {mask} : {text}", "causal LM predicts left to right"),
        ("positive", "excellent", "'excellent'"),
    ],
)
def test_bad_input_shows_the_error_instead_of_raising(field, value, fragment):
    pg = PromptPlayground(
        load_backbone("tiny-gpt2"),
        SENTENCES,
        "{text} it was {mask}.",
        {"negative": "bad", "positive": "good"},
    )
    box = pg.template_box if field == "template" else pg.word_boxes[field]
    box.value = value
    assert pg.table is None and fragment in pg.error
    assert fragment in pg.output.outputs[-1]["data"]["text/html"]


def test_prompt_playground_also_shows_a_static_copy(monkeypatch):
    shown = []
    monkeypatch.setattr(widgets, "display", shown.append)
    pg = prompt_playground(
        load_backbone("tiny-gpt2"),
        SENTENCES,
        "{text} it was {mask}.",
        {"negative": "bad", "positive": "good"},
    )
    assert shown[0] is pg.widget  # the live widget first, then the static copy
    image, table = shown[-2:]
    assert isinstance(image, Image) and image.data[:4] == b"\x89PNG"
    assert isinstance(table, HTML) and "a great film" in table.data and "0." in table.data


def test_no_sentences_is_refused():
    with pytest.raises(ValueError, match="at least one sentence"):
        PromptPlayground(load_backbone("tiny-gpt2"), [])
