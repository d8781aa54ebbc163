"""Cloze classification: our label-word scores are the LM head's, exactly as 🤗 fill-mask sees them."""

import pytest
import torch
from transformers import pipeline

from prompt_learning import ClozeClassifier, Template, TemplateError, Verbalizer, load_backbone
from prompt_learning.readout import causal_next_token_logits

SENTENCES = ["a great film", "the plot was boring and dull , i hate it", "fun"]


@pytest.mark.parametrize(
    "name, targets", [("tiny-bert", ["bad", "good"]), ("tiny-roberta", [" bad", " good"])]
)
def test_label_word_probabilities_equal_the_fill_mask_pipeline(name, targets):
    b = load_backbone(name)
    clf = ClozeClassifier(b, "{text} it was {mask}.", Verbalizer({"negative": "bad", "positive": "good"}))
    fill = pipeline("fill-mask", model=b.model, tokenizer=b.tokenizer, device="cpu")
    mask = b.tokenizer.mask_token
    with torch.no_grad():
        ours = clf.word_logits(SENTENCES).softmax(-1)  # (B, V)
    for i, s in enumerate(SENTENCES):
        theirs = fill(f"{s} it was {mask}.", targets=targets)
        by_id = {r["token"]: r["score"] for r in theirs}
        for ids in clf.label_ids:
            assert ours[i, ids[0]].item() == pytest.approx(by_id[ids[0]], rel=1e-4, abs=1e-7)


def test_masked_lm_fills_a_mask_anywhere():
    b = load_backbone("tiny-bert")
    v = Verbalizer({"negative": "bad", "positive": "good"})
    first = ClozeClassifier(b, "it was {mask} : {text}", v)
    batch = first.encode(["a great film", "fun"])
    assert batch["mask_pos"].tolist() == [3, 3]  # [CLS] it was [MASK]
    assert first(SENTENCES).shape == (3, 2)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_causal_scores_do_not_depend_on_left_padding(name):
    clf = ClozeClassifier(
        load_backbone(name), "{text} it was {mask}.", Verbalizer({"negative": "bad", "positive": "good"})
    )
    with torch.no_grad():
        together = clf(SENTENCES)  # padded to the longest
        alone = torch.cat([clf([s]) for s in SENTENCES])  # no padding at all
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_causal_slot_is_the_next_token_after_the_template(name):
    b = load_backbone(name)
    clf = ClozeClassifier(b, "{text} it was {mask}.", Verbalizer({"negative": "bad", "positive": "good"}))
    ids = b.tokenizer("a great film it was", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        direct = b.model(input_ids=ids).logits[:, -1]  # (1, V)
        ours = clf.word_logits(["a great film"])
    torch.testing.assert_close(ours, direct, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_causal_lm_refuses_a_mid_sentence_mask(name):
    with pytest.raises(TemplateError, match="causal LM predicts left to right"):
        ClozeClassifier(load_backbone(name), "it was {mask} : {text}", Verbalizer({"n": "bad", "p": "good"}))


def test_models_without_an_lm_head_are_refused():
    with pytest.raises(ValueError, match="needs an LM head"):
        ClozeClassifier(
            load_backbone("tiny-bart"), "{text} it was {mask}.", Verbalizer({"n": "bad", "p": "good"})
        )


def test_two_text_template_needs_its_columns():
    b = load_backbone("tiny-bert")
    clf = ClozeClassifier(b, Template("{text_a} ? {mask} , {text_b}"), Verbalizer({"no": "no", "yes": "yes"}))
    out = clf({"text_a": ["the film was fun", "i hate it"], "text_b": ["it was good", "i loved it"]})
    assert out.shape == (2, 2)
    with pytest.raises(ValueError, match=r"2 text columns \[.text_a., .text_b.\]; pass a dict"):
        clf(["the film was fun"])


def test_next_token_logits_accept_embeddings():
    b = load_backbone("tiny-llama")
    enc = b.tokenizer(["a great film", "fun"], padding=True, return_tensors="pt")
    emb = b.model.get_input_embeddings()(enc["input_ids"])  # (B, T, H)
    with torch.no_grad():
        from_ids = causal_next_token_logits(b.model, enc["input_ids"], enc["attention_mask"])
        from_emb = causal_next_token_logits(
            b.model, enc["input_ids"], enc["attention_mask"], inputs_embeds=emb
        )
    torch.testing.assert_close(from_ids, from_emb)
