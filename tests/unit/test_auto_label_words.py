"""LM-BFF's automatic label words: the scores are the summed log-probabilities, the ranking is the
zero-shot accuracy, the classes keep the dataset's order."""

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from prompt_learning import ClozeClassifier, Template, Verbalizer, evaluate, load_backbone
from prompt_learning.auto_label_words import LabelWordError, auto_label_words, whole_word_ids
from prompt_learning.multi_token import MultiTokenCloze


def _brute_force_scores(backbone, template: Template, texts, words) -> torch.Tensor:
    """(N, W): one example and one word at a time, a plain forward, log-softmax, the word's entry."""
    tok, causal = backbone.tokenizer, backbone.kind == "causal-lm"
    out = torch.zeros(len(texts), len(words))
    for i, text in enumerate(texts):
        ids, _, pos = template.rows(tok, {"text": [text]}, 128, causal=causal)[0]
        logits = backbone.model(input_ids=torch.tensor([ids])).logits[0]  # (T, V)
        logp = torch.log_softmax(logits[-1] if causal else logits[pos], -1)  # (V,)
        for j, w in enumerate(words):
            (tid,) = tok((" " if template.mask_space else "") + w, add_special_tokens=False)["input_ids"]
            out[i, j] = logp[tid]
    return out


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-gpt2"])
def test_candidate_scores_equal_a_brute_force_sum_over_each_class(name, sentiment_toy):
    b = load_backbone(name)
    template = Template("{text} it was {mask}.")
    with torch.no_grad():
        found = auto_label_words(b, template, sentiment_toy, k=5, n=3, mixed_precision="no")
        y = torch.tensor(sentiment_toy["label"])
        for c, label in enumerate(["negative", "positive"]):
            words = [w for w, _ in found.candidates[label]]
            texts = [t for t, yy in zip(sentiment_toy["text"], y.tolist()) if yy == c]
            want = _brute_force_scores(b, template, texts, words).sum(0)
            got = torch.tensor([s for _, s in found.candidates[label]])
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
            assert got.tolist() == sorted(got.tolist(), reverse=True)  # best first
        # and they are the top 5 of the whole (whole-word) vocabulary
        pool = whole_word_ids(b.tokenizer, template.mask_space)
        vocab_words = [b.tokenizer.decode([i]).strip() for i in pool]
        every = _brute_force_scores(
            b, template, [t for t, yy in zip(sentiment_toy["text"], y.tolist()) if yy == 1], vocab_words
        ).sum(0)
    assert [w for w, _ in found.candidates["positive"]] == [vocab_words[i] for i in every.topk(5).indices]


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-gpt2"])
def test_ranked_by_zero_shot_accuracy_which_the_cloze_classifier_reproduces(name, sentiment_toy):
    b = load_backbone(name)
    found = auto_label_words(b, "{text} it was {mask}.", sentiment_toy, k=6, n=5, mixed_precision="no")
    assert len(found.ranked) == 5
    keys = [(s.accuracy, s.log_likelihood) for s in found.ranked]
    assert keys == sorted(keys, reverse=True)
    for scored in found.ranked[:2]:
        clf = ClozeClassifier(b, "{text} it was {mask}.", scored.verbalizer)
        assert evaluate(clf, sentiment_toy)["accuracy"] == pytest.approx(scored.accuracy)
    assert found.ranked[0].accuracy >= 0.5  # the best of 36 assignments is at least a coin flip here


def test_classes_come_back_in_the_datasets_label_order():
    features = Features(
        {"text": Value("string"), "label": ClassLabel(names=["positive", "negative", "neutral"])}
    )
    data = Dataset.from_dict(
        {
            "text": ["a great film", "an awful movie", "it was a film", "good fun", "boring"],
            "label": [0, 1, 2, 0, 1],
        },
        features=features,
    )
    found = auto_label_words(load_backbone("tiny-bert"), "{text} it was {mask}.", data, k=3, n=2)
    assert found.labels == ["positive", "negative", "neutral"]
    assert list(found.candidates) == found.labels
    for s in found.ranked:
        assert s.verbalizer.labels == found.labels
        s.verbalizer.check_labels(data.features["label"].names)
        assert len({w[0] for w in s.verbalizer.words}) == 3  # one word per class, never shared
    assert list(found.candidate_table().columns) == found.labels


def test_vocabulary_candidates_are_whole_words_not_specials_or_fragments(sentiment_toy):
    b = load_backbone("tiny-gpt2")  # byte-level BPE: most of its vocabulary is fragments
    tok = b.tokenizer
    found = auto_label_words(b, "{text} it was {mask}.", sentiment_toy, k=10, n=1, mixed_precision="no")
    for label, words in found.candidates.items():
        for w, _ in words:
            ids = tok(" " + w, add_special_tokens=False)["input_ids"]
            assert len(ids) == 1 and ids[0] not in tok.all_special_ids, (label, w)
            assert tok.convert_ids_to_tokens(ids)[0].startswith("Ġ") and any(ch.isalpha() for ch in w)
    pool = set(whole_word_ids(tok, True))
    assert tok.convert_tokens_to_ids("good") not in pool  # "good" without its space: a fragment here


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-bert"])
def test_given_multi_token_phrases_are_scored_whole_not_dropped(name, sentiment_toy):
    b = load_backbone(name)
    candidates = {"negative": ["bad", "not good", "boring"], "positive": ["good", "very good", "great"]}
    found = auto_label_words(
        b, "{text} it was {mask}.", sentiment_toy, k=3, n=9, candidates=candidates, mixed_precision="no"
    )
    assert {w for w, _ in found.candidates["negative"]} == set(candidates["negative"])
    # the phrases' scores are their whole log-probabilities, summed over the class's examples
    space = " "
    clf = MultiTokenCloze(
        b,
        "{text} it was {mask}.",
        Verbalizer(
            {"n": ["bad", "not good", "boring"], "p": ["good", "very good", "great"]}, multi_token="sum"
        ),
    )
    with torch.no_grad():
        table = clf.word_scores(sentiment_toy["text"])  # (N, 6)
    y = torch.tensor(sentiment_toy["label"])
    for c, label in enumerate(["negative", "positive"]):
        for w, s in found.candidates[label]:
            col = candidates["negative"].index(w) if c == 0 else 3 + candidates["positive"].index(w)
            assert s == pytest.approx(float(table[y == c, col].sum()), abs=1e-4)
    assert len(b.tokenizer(space + "not good", add_special_tokens=False)["input_ids"]) == 2
    multi = [s for s in found.ranked if any(" " in w[0] for w in s.verbalizer.words)]  # holds a phrase
    assert multi, "some assignment holds a phrase"
    for s in multi:  # a phrase comes back in a verbalizer that scores it whole
        assert s.verbalizer.multi_token == "sum"
        acc = evaluate(MultiTokenCloze(b, "{text} it was {mask}.", s.verbalizer), sentiment_toy)["accuracy"]
        assert acc == pytest.approx(s.accuracy)
    single = [s for s in found.ranked if s not in multi]
    assert all(s.verbalizer.multi_token == "error" for s in single)  # usable by ClozeClassifier as is


def test_bad_requests_are_refused_before_compute(sentiment_toy):
    b = load_backbone("tiny-bert")
    t = "{text} it was {mask}."
    with pytest.raises(LabelWordError, match="one entry per class"):
        auto_label_words(b, t, sentiment_toy, candidates={"negative": ["bad"], "good": ["good"]})
    with pytest.raises(LabelWordError, match="lower k"):
        auto_label_words(b, t, sentiment_toy, k=50, max_assignments=100)
    with pytest.raises(LabelWordError, match="no example"):
        auto_label_words(b, t, sentiment_toy.filter(lambda r: r["label"] == 1))
    with pytest.raises(LabelWordError, match="k must be a positive integer"):
        auto_label_words(b, t, sentiment_toy, k=0)
    with pytest.raises(LabelWordError, match="class names are unknown"):
        auto_label_words(b, t, {"text": ["a", "b"], "label": [0, 1]})
    with pytest.raises(LabelWordError, match="unknown token"):
        auto_label_words(b, t, sentiment_toy, candidates=["bad", "excellent"])
    with pytest.raises(Exception, match="at the end"):
        auto_label_words(load_backbone("tiny-gpt2"), "{mask}: {text}", sentiment_toy)
    with pytest.raises(Exception, match="LM head"):
        auto_label_words(load_backbone("tiny-bart"), t, sentiment_toy)
    found = auto_label_words(
        b, t, {"text": ["a great film", "awful"], "label": [1, 0]}, labels=["neg", "pos"], k=2
    )
    assert found.labels == ["neg", "pos"]
    repeated = auto_label_words(
        b, t, sentiment_toy, candidates={"negative": ["bad", "bad ", "awful"], "positive": ["good"]}
    )
    assert [w for w, _ in repeated.candidates["negative"]] in (["bad", "awful"], ["awful", "bad"])
