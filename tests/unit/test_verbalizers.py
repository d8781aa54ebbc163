"""Verbalizers: every class has words, every word is one token of this tokenizer, classes stay apart."""

import pytest
import torch

from prompt_learning import ClozeClassifier, Verbalizer, VerbalizerError, load_backbone


class SpaceSensitiveTokenizer:
    """A stand-in for a BPE tokenizer: ' terrible' is one token, 'terrible' is two (as in SmolLM2)."""

    unk_token_id, unk_token = 0, "<unk>"
    vocab = {"<unk>": 0, "Ġterrible": 1, "ter": 2, "rible": 3, "Ġgreat": 4, "great": 5}

    def __call__(self, text, add_special_tokens=False):
        if text.startswith(" "):
            pieces = ["Ġ" + text[1:]]
        else:
            pieces = ["ter", "rible"] if text == "terrible" else [text]
        return {"input_ids": [self.vocab.get(p, 0) for p in pieces]}

    def convert_ids_to_tokens(self, ids):
        inverse = {i: t for t, i in self.vocab.items()}
        return inverse[ids] if isinstance(ids, int) else [inverse[i] for i in ids]


@pytest.mark.parametrize("words, fragment", [
    ({}, "at least two classes"),
    ({"positive": "great"}, "at least two classes"),
    ({"negative": [], "positive": "great"}, "['negative'] have no label words"),
    ({"negative": "  ", "positive": "great"}, "['negative'] have no label words"),
    ({"negative": ["bad", ""], "positive": "great"}, "empty label word"),
    ({"negative": ["bad", 3], "positive": "great"}, "must be strings"),
])
def test_bad_word_lists_are_refused_when_made(words, fragment):
    with pytest.raises(VerbalizerError) as err:
        Verbalizer(words)
    assert fragment in str(err.value)


def test_multi_token_option_is_checked():
    with pytest.raises(VerbalizerError, match="'error' or 'first'"):
        Verbalizer({"a": "good", "b": "bad"}, multi_token="mean")


@pytest.mark.parametrize("name", ["tiny-roberta", "tiny-gpt2"])
def test_multi_token_word_names_the_word_and_its_tokens(name):
    tok = load_backbone(name).tokenizer
    with pytest.raises(VerbalizerError) as err:
        Verbalizer({"negative": "bad", "positive": "excellent"}).token_ids(tok, space_before=True)
    msg = str(err.value)
    assert "'excellent'" in msg and "class 'positive'" in msg
    assert "'Ġ'" in msg and "multi_token='first'" in msg


def test_multi_token_first_scores_the_first_token():
    tok = load_backbone("tiny-gpt2").tokenizer
    ids = Verbalizer({"negative": "bad", "positive": "excellent"}, multi_token="first").token_ids(tok)
    assert ids[1] == [tok(" excellent", add_special_tokens=False)["input_ids"][0]]


def test_leading_space_decides_the_token_and_the_error_says_so():
    """BPE: ' terrible' (after a space) is one token; 'terrible' glued to ':' is two."""
    tok = SpaceSensitiveTokenizer()
    v = Verbalizer({"negative": "terrible", "positive": "great"})
    assert v.token_ids(tok, space_before=True) == [[1], [4]]
    with pytest.raises(VerbalizerError) as err:
        v.token_ids(tok, space_before=False)
    msg = str(err.value)
    assert "'terrible'" in msg and "['ter', 'rible']" in msg
    assert "one token ['Ġterrible'] with the space" in msg


def test_bpe_label_ids_follow_the_templates_space():
    tok = load_backbone("tiny-gpt2").tokenizer
    v = Verbalizer({"negative": "bad", "positive": "good"})
    spaced = ClozeClassifier(load_backbone("tiny-gpt2"), "{text} it was {mask}.", v).label_ids
    glued = ClozeClassifier(load_backbone("tiny-gpt2"), "{text} it was:{mask}", v).label_ids
    assert tok.convert_ids_to_tokens(spaced[1]) == ["Ġgood"]
    assert tok.convert_ids_to_tokens(glued[1]) == ["good"]


def test_unknown_word_is_refused_for_wordpiece():
    tok = load_backbone("tiny-bert").tokenizer
    with pytest.raises(VerbalizerError, match=r"'excellent'.*unknown token '\[UNK\]'"):
        Verbalizer({"negative": "bad", "positive": "excellent"}).token_ids(tok)


def test_a_token_shared_by_two_classes_is_refused():
    tok = load_backbone("tiny-gpt2").tokenizer
    with pytest.raises(VerbalizerError, match="stand for several classes"):
        Verbalizer({"negative": ["bad", "boring"], "positive": ["good", "bad"]}).token_ids(tok)
    with pytest.raises(VerbalizerError, match="stand for several classes"):  # same first token
        Verbalizer({"a": "excellent", "b": "exceptional"}, multi_token="first").token_ids(tok)


def test_the_cloze_classifier_validates_words_before_any_compute():
    with pytest.raises(VerbalizerError, match="'excellent'"):
        ClozeClassifier(load_backbone("tiny-bert"), "{text} It was {mask}.",
                        Verbalizer({"negative": "bad", "positive": "excellent"}))


def test_class_logits_average_each_class_words():
    v = Verbalizer({"negative": ["bad", "awful"], "positive": "good"})
    word_logits = torch.arange(12.0).view(2, 6)  # (B=2, V=6)
    out = v.class_logits(word_logits, [[1, 3], [5]])
    torch.testing.assert_close(out, torch.tensor([[2.0, 5.0], [8.0, 11.0]]))


def test_labels_must_match_the_dataset_order():
    v = Verbalizer({"negative": "bad", "positive": "good"})
    v.check_labels(["negative", "positive"])
    with pytest.raises(VerbalizerError, match="dataset's label order"):
        v.check_labels(["positive", "negative"])
