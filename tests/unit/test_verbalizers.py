"""Verbalizers: every class has words, every word is one token of this tokenizer, classes stay apart."""

import pytest
import torch

from prompt_learning import ClozeClassifier, Verbalizer, VerbalizerError, load_backbone
from prompt_learning.multi_token import (
    MultiTokenCloze,
    MultiTokenError,
    continuation_logprob,
    masked_span_logprob,
)
from prompt_learning.templates import Template


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


@pytest.mark.parametrize(
    "words, fragment",
    [
        ({}, "at least two classes"),
        ({"positive": "great"}, "at least two classes"),
        ({"negative": [], "positive": "great"}, "['negative'] have no label words"),
        ({"negative": "  ", "positive": "great"}, "['negative'] have no label words"),
        ({"negative": ["bad", ""], "positive": "great"}, "empty label word"),
        ({"negative": ["bad", 3], "positive": "great"}, "must be strings"),
    ],
)
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
        ClozeClassifier(
            load_backbone("tiny-bert"),
            "{text} It was {mask}.",
            Verbalizer({"negative": "bad", "positive": "excellent"}),
        )


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


# --- multi_token="sum": a label word of several tokens, scored whole ------------------------------


def _plain_continuation_logprob(model, prefix: list[int], cont: list[int]) -> torch.Tensor:
    """One token at a time, no padding: log p(c_t | prefix, c_<t) from a plain forward, summed."""
    total = torch.zeros(())
    for t in range(len(cont)):
        ids = torch.tensor([prefix + cont[:t]])
        logp = torch.log_softmax(model(input_ids=ids).logits[0, -1], -1)
        total = total + logp[cont[t]]
    return total


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_continuation_logprob_is_the_sum_of_per_token_log_probs(name):
    b = load_backbone(name)
    tok = b.tokenizer
    prefixes = ["a great film . it was", "it was", "boring and dull , the movie was really"]
    conts = [" not good", " very good", " bad"]  # 2, 2 and 1 tokens: padding on the left differs per row
    with torch.no_grad():
        got = continuation_logprob(b.model, tok, prefixes, conts)
        want = torch.stack(
            [
                _plain_continuation_logprob(
                    b.model,
                    tok(p, add_special_tokens=False)["input_ids"],
                    tok(c, add_special_tokens=False)["input_ids"],
                )
                for p, c in zip(prefixes, conts)
            ]
        )
    assert [len(tok(c, add_special_tokens=False)["input_ids"]) for c in conts] == [2, 2, 1]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_continuation_logprob_refuses_bad_input_before_compute():
    b = load_backbone("tiny-gpt2")
    with pytest.raises(MultiTokenError, match="one continuation per prefix"):
        continuation_logprob(b.model, b.tokenizer, ["a", "b"], [" good"])
    with pytest.raises(MultiTokenError, match="masked_span_logprob"):
        bert = load_backbone("tiny-bert")
        continuation_logprob(bert.model, bert.tokenizer, ["a"], [" good"])
    with pytest.raises(MultiTokenError, match=r"continuations\[0\] has no tokens"):
        continuation_logprob(b.model, b.tokenizer, ["a"], [[]])


def _plain_pet_multi_mask(model, tok, before, after, cont) -> torch.Tensor:
    """PET's multi-mask inference written out: fill the most confident mask first, sum the log-probs."""
    ids = list(before) + [tok.mask_token_id] * len(cont) + list(after)
    todo = list(range(len(cont)))
    total = torch.zeros(())
    while todo:
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)  # (T, V)
        here = [logp[len(before) + j, cont[j]] for j in todo]
        j = todo[int(torch.stack(here).argmax())]
        total = total + logp[len(before) + j, cont[j]]
        ids[len(before) + j] = cont[j]
        todo.remove(j)
    return total


def test_masked_span_logprob_is_pets_most_confident_first_fill():
    b = load_backbone("tiny-bert")
    tok = b.tokenizer
    rows = [
        Template("{text} it was {mask} .").rows(tok, {"text": [t]}, 64, causal=False)[0]
        for t in ["a great film", "boring and dull , i hate this plot"]
    ]
    conts = [
        tok("not good very", add_special_tokens=False)["input_ids"],
        tok("bad", add_special_tokens=False)["input_ids"],
    ]
    before = [ids[:pos] for ids, _, pos in rows]
    after = [ids[pos + 1 :] for ids, _, pos in rows]
    with torch.no_grad():
        got = masked_span_logprob(b.model, tok, before, after, conts)
        want = torch.stack(
            [_plain_pet_multi_mask(b.model, tok, bf, af, c) for bf, af, c in zip(before, after, conts)]
        )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "name, template",
    [
        ("tiny-gpt2", "{text} it was {mask}."),
        ("tiny-bert", "{text} it was {mask}."),
        ("tiny-roberta", "{text} it was {mask}."),
    ],
)
def test_one_token_words_rank_classes_as_the_cloze_classifier(name, template):
    """log-softmax = logits − logsumexp: the same class softmax, the same argmax."""
    words = {"negative": ["bad", "boring"], "positive": "good"}
    texts = ["a great film", "an awful movie", "good fun"]
    b = load_backbone(name)
    with torch.no_grad():
        cloze = ClozeClassifier(b, template, Verbalizer(words))(texts)
        multi = MultiTokenCloze(b, template, Verbalizer(words, multi_token="sum"))(texts)
    torch.testing.assert_close(torch.softmax(multi, -1), torch.softmax(cloze, -1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-bert"])
def test_multi_token_class_score_is_the_mean_of_its_words_whole_log_probs(name):
    b = load_backbone(name)
    tok, template = b.tokenizer, Template("{text} it was {mask}.")
    v = Verbalizer({"negative": ["not good", "bad"], "positive": ["very good"]}, multi_token="sum")
    texts = ["a great film", "i hate this plot"]
    clf = MultiTokenCloze(b, template, v)
    causal = b.kind == "causal-lm"
    rows = template.rows(tok, {"text": texts}, 64, causal=causal)
    space = " " if template.mask_space else ""
    want = []
    with torch.no_grad():
        got = clf(texts)
        for ids, _, pos in rows:
            score = {}
            for w in ["not good", "bad", "very good"]:
                c = tok(space + w, add_special_tokens=False)["input_ids"]
                score[w] = (
                    _plain_continuation_logprob(b.model, ids, c)
                    if causal
                    else _plain_pet_multi_mask(b.model, tok, ids[:pos], ids[pos + 1 :], c)
                )
            want.append(torch.stack([(score["not good"] + score["bad"]) / 2, score["very good"]]))
    torch.testing.assert_close(got, torch.stack(want), atol=1e-5, rtol=1e-5)


def test_sum_verbalizer_checks_whole_sequences_and_points_to_the_multi_token_cloze():
    tok = load_backbone("tiny-gpt2").tokenizer
    v = Verbalizer({"a": "not good", "b": "not bad"}, multi_token="sum")  # same first token: fine
    seqs = v.token_sequences(tok)
    assert seqs[0][0][0] == seqs[1][0][0] and seqs[0][0] != seqs[1][0]
    with pytest.raises(VerbalizerError, match="MultiTokenCloze"):
        v.token_ids(tok)
    with pytest.raises(VerbalizerError, match="MultiTokenCloze"):
        ClozeClassifier(load_backbone("tiny-gpt2"), "{text} it was {mask}.", v)
    with pytest.raises(VerbalizerError, match="stand for several classes"):
        Verbalizer({"a": ["not good"], "b": ["bad", "not good"]}, multi_token="sum").token_sequences(tok)
    with pytest.raises(VerbalizerError, match="unknown token"):
        Verbalizer({"a": "excellent", "b": "bad"}, multi_token="sum").token_sequences(
            load_backbone("tiny-bert").tokenizer
        )
    assert Verbalizer.from_spec(v.spec()).multi_token == "sum"


def test_multi_token_cloze_refuses_what_it_cannot_score():
    v = Verbalizer({"a": "not good", "b": "bad"}, multi_token="sum")
    with pytest.raises(Exception, match="at the end"):
        MultiTokenCloze(load_backbone("tiny-gpt2"), "{mask} : {text}", v)
    with pytest.raises(MultiTokenError, match="LM head"):
        MultiTokenCloze(load_backbone("tiny-bart"), "{text} it was {mask}.", v)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_cached_continuations_equal_the_plain_sums_and_carry_gradients(name):
    from prompt_learning.multi_token import cached_continuations

    b = load_backbone(name)
    tok = b.tokenizer
    prompts = [
        tok(p, add_special_tokens=False)["input_ids"]
        for p in ["a great film . it was", "it was", "boring and dull , the movie was really"]
    ]  # left padding differs
    words = [tok(w, add_special_tokens=False)["input_ids"] for w in [" bad", " not good", " not very good"]]
    assert [len(w) for w in words] == [1, 2, 3]
    got = cached_continuations(b.model, tok, prompts, words)  # (3, 3)
    with torch.no_grad():
        want = torch.stack(
            [torch.stack([_plain_continuation_logprob(b.model, p, w) for w in words]) for p in prompts]
        )
    torch.testing.assert_close(got.detach(), want, atol=1e-5, rtol=1e-5)
    emb = b.model.get_input_embeddings().weight
    emb.requires_grad_(True)
    cached_continuations(b.model, tok, prompts, words).sum().backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    emb.requires_grad_(False)
