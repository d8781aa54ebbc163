"""Prompt tuning: PEFT's numbers, positions counted over the virtual tokens, inits, readouts, errors."""

import numpy as np
import pytest
import torch
from peft import PromptTuningConfig as PeftPromptTuningConfig
from peft import PromptTuningInit as PeftInit
from peft import get_peft_model

from prompt_learning import ClozeClassifier, PromptLearningConfig, Verbalizer, evaluate, fit, load_backbone
from prompt_learning.backbones import Backbone
from prompt_learning.soft_prompts import (
    PromptTuning,
    PromptTuningConfig,
    PromptTuningInit,
    Readout,
    SoftPromptError,
    initial_prompt,
    nearest_token_table,
    nearest_tokens,
)

TEMPLATE = "{text} It was {mask}."
WORDS = Verbalizer({"negative": "bad", "positive": "good"})
SAME_LENGTH = ["a fine film", "a dull movie", "i loved it"]  # 3 tokens each: no padding in a batch


def make(name="tiny-llama", n=5, **kw) -> PromptTuning:
    cfg = PromptTuningConfig(num_virtual_tokens=n, **({"init": "RANDOM", "seed": 3, "max_length": 64} | kw))
    return PromptTuning(load_backbone(name), TEMPLATE, WORDS, cfg)


def test_same_logits_as_peft_prompt_tuning():
    ours = make()
    peft = get_peft_model(ours.model, PeftPromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5))
    with torch.no_grad():
        peft.prompt_encoder["default"].embedding.weight.copy_(ours.prompt)
        batch = ours.template.encode(ours.tokenizer, {"text": SAME_LENGTH}, 64, causal=True)
        assert batch["attention_mask"].all()  # PEFT counts positions over padding: compare unpadded
        theirs = peft(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, -1]
        mine = ours.word_logits(SAME_LENGTH)  # (B, V)
    assert mine.shape == theirs.shape == (3, len(ours.tokenizer))
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)
    zero_shot = ClozeClassifier(ours.backbone, TEMPLATE, WORDS, PromptLearningConfig(max_length=64))
    assert not torch.allclose(mine, zero_shot.word_logits(SAME_LENGTH))  # the prompt does change the output


def test_text_init_matches_peft(tmp_path):
    ours = make(init="TEXT", init_text="the movie was")
    ours.tokenizer.save_pretrained(tmp_path)
    peft = get_peft_model(
        load_backbone("tiny-llama").model,
        PeftPromptTuningConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=5,
            prompt_tuning_init=PeftInit.TEXT,
            prompt_tuning_init_text="the movie was",
            tokenizer_name_or_path=str(tmp_path),
        ),
    )
    torch.testing.assert_close(ours.prompt, peft.prompt_encoder["default"].embedding.weight)
    ids = ours.tokenizer("the movie was", add_special_tokens=False)["input_ids"]
    vocab = ours.model.get_input_embeddings().weight
    assert torch.equal(ours.prompt[3], vocab[ids[0]])  # repeated from the start to fill 5 tokens


def test_virtual_tokens_first_and_positions_counted_over_them():
    pt = make()
    b = pt.encode(["a fine film", "a movie that was boring and dull"])
    assert (b["virtual_index"][:, :5] == torch.arange(5)).all() and (b["virtual_index"][:, 5:] == -1).all()
    assert b["attention_mask"][:, :5].all() and not b["attention_mask"][0].all()  # row 0 is left-padded
    with torch.no_grad():
        together = pt(["a fine film", "a movie that was boring and dull"])  # padded batch
        alone = torch.cat([pt(["a fine film"]), pt(["a movie that was boring and dull"])])  # no padding
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_masked_lm_keeps_the_mask_slot():
    pt = make("tiny-bert")
    b = pt.encode(["a fine film", "a movie that was boring and dull"])
    rows = torch.arange(2)
    assert (b["input_ids"][rows, b["mask_pos"]] == pt.tokenizer.mask_token_id).all()
    assert pt(["a fine film"]).shape == (1, 2)


def all_positive(ds):
    """A target a soft prompt can reach even on a tiny random model (which cannot read sentiment)."""
    return ds.map(lambda row: {"label": 1})


def test_only_the_prompt_trains(sentiment_toy):
    pt = make()
    assert [p is pt.prompt for p in pt.parameters() if p.requires_grad] == [True]
    assert pt.trainable_parameters() == 5 * 32
    frozen = {n: p.clone() for n, p in pt.model.named_parameters()}
    start = pt.prompt.detach().clone()
    hist = fit(pt, all_positive(sentiment_toy), steps=12, lr=0.05, batch_size=4, seed=0, progress=False)
    assert hist.loss[-1] < hist.loss[0] - 0.1 and not torch.equal(pt.prompt, start)
    assert all(torch.equal(p, frozen[n]) for n, p in pt.model.named_parameters())
    assert not pt.model.training  # the frozen backbone is never put in train mode


def test_inits():
    vocab = load_backbone("tiny-llama").model.get_input_embeddings().weight
    a, b, c = (make(init="SAMPLE_VOCAB", seed=s).prompt for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert all((vocab == row).all(-1).any() for row in a)  # each row is a vocabulary vector
    special = load_backbone("tiny-llama").tokenizer.all_special_ids
    assert not any((vocab[special] == row).all(-1).any() for row in a)
    r = initial_prompt(vocab, 400, PromptTuningInit.RANDOM)
    assert 0.7 < r.std().item() / vocab.std().item() < 1.3  # at the vocabulary's scale
    assert make(init=PromptTuningInit.RANDOM).config.init is PromptTuningInit.RANDOM


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-bert"])
def test_head_readout(name, sentiment_toy):
    pt = PromptTuning(
        load_backbone(name),
        TEMPLATE,
        ["negative", "positive"],
        PromptTuningConfig(num_virtual_tokens=4, init="SAMPLE_VOCAB", readout="head", max_length=64),
    )
    assert (
        pt.readout is Readout.HEAD and len([p for p in pt.parameters() if p.requires_grad]) == 3
    )  # prompt, head weight, bias
    start = pt.prompt.detach().clone()
    fit(pt, all_positive(sentiment_toy), steps=20, lr=0.05, batch_size=4, seed=0, progress=False)
    assert evaluate(pt, sentiment_toy)["predictions"].tolist() == [1] * 8
    assert not torch.equal(pt.prompt, start)  # the gradient reaches the prompt through the head


def test_head_readout_on_an_encoder_without_lm_head(sentiment_toy):
    bert = load_backbone("tiny-bert")
    encoder = Backbone("tiny-bert-encoder", "encoder", bert.model.bert, bert.tokenizer)
    pt = PromptTuning(
        encoder,
        TEMPLATE,
        ["negative", "positive"],
        PromptTuningConfig(num_virtual_tokens=4, init="RANDOM", readout="head", max_length=64),
    )
    assert pt(sentiment_toy["text"][:3]).shape == (3, 2)
    with pytest.raises(ValueError, match="needs an LM head"):
        PromptTuning(
            encoder, TEMPLATE, WORDS, PromptTuningConfig(num_virtual_tokens=4, init="RANDOM", max_length=64)
        )


def test_nearest_tokens_of_a_text_init_are_the_text():
    pt = make(init="TEXT", init_text="the movie was great")
    sims, ids = nearest_tokens(pt.prompt, pt.model.get_input_embeddings().weight, k=3)
    want = pt.tokenizer("the movie was great", add_special_tokens=False)["input_ids"]
    assert ids[:4, 0].tolist() == want and torch.allclose(sims[:4, 0], torch.ones(4))
    table = nearest_token_table(pt, k=3)
    assert table.shape == (5, 3) and "' movie'" in table.loc["P1", "nearest 1"]
    with pytest.raises(SoftPromptError, match="k must be at least 1"):
        nearest_tokens(pt.prompt, pt.model.get_input_embeddings().weight, k=0)


# --- bad input: each a clear error, raised before any compute ---------------------------------


@pytest.mark.parametrize("n", [0, -3, 2.5, "4", True])
def test_zero_virtual_tokens_is_refused(n):
    with pytest.raises(ValueError, match="num_virtual_tokens must be a (non-negative|positive) integer"):
        PromptTuningConfig(num_virtual_tokens=n)


def test_numpy_integer_length_is_accepted():
    assert PromptTuningConfig(num_virtual_tokens=np.int64(3)).num_virtual_tokens == 3


def test_init_text_longer_than_the_prompt_is_refused():
    with pytest.raises(
        SoftPromptError, match=r"is 4 tokens but the prompt has 2 virtual tokens.*num_virtual_tokens >= 4"
    ):
        make(n=2, init="TEXT", init_text="the movie was great")


def test_text_init_without_text_is_refused():
    with pytest.raises(SoftPromptError, match="needs init_text"):
        PromptTuningConfig(init="TEXT", init_text="  ")


def test_unknown_init_and_readout_are_refused():
    with pytest.raises(ValueError, match=r"unknown init 'zeros'.*TEXT"):
        PromptTuningConfig(init="zeros")
    with pytest.raises(ValueError, match=r"unknown readout 'pooler'.*head"):
        PromptTuningConfig(readout="pooler")


def test_verbalizer_readout_needs_a_verbalizer():
    with pytest.raises(SoftPromptError, match="needs a Verbalizer"):
        PromptTuning(
            load_backbone("tiny-llama"),
            TEMPLATE,
            ["negative", "positive"],
            PromptTuningConfig(num_virtual_tokens=2, init="RANDOM", max_length=64),
        )


def test_prompt_plus_text_longer_than_the_positions_is_refused():
    with pytest.raises(
        ValueError, match="10 virtual tokens \\+ max_length 120 need 130 positions.*at most 118"
    ):
        PromptTuning(
            load_backbone("tiny-llama"),
            TEMPLATE,
            WORDS,
            PromptTuningConfig(num_virtual_tokens=10, init="RANDOM", max_length=120),
        )


def test_word_logits_needs_the_verbalizer_readout():
    pt = PromptTuning(
        load_backbone("tiny-llama"),
        TEMPLATE,
        ["n", "p"],
        PromptTuningConfig(num_virtual_tokens=2, init="RANDOM", readout="head", max_length=64),
    )
    with pytest.raises(SoftPromptError, match="readout='verbalizer'"):
        pt.word_logits(["a film"])


def test_the_splice_by_hand_equals_prompt_tuning():
    """Chapter 3's from-scratch cell: n vectors before the embeddings, n more mask columns, positions counted."""
    pt = make()
    texts = ["a fine film", "a movie that was boring and dull"]
    hard = pt.template.encode(pt.tokenizer, {"text": texts}, 64, causal=True)
    B, n = len(texts), pt.prompt.shape[0]
    E = pt.model.get_input_embeddings()
    x = torch.cat([pt.prompt.expand(B, n, -1), E(hard["input_ids"])], 1)  # (B, n + T, d)
    mask = torch.cat([torch.ones(B, n, dtype=torch.long), hard["attention_mask"]], 1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        nxt = pt.model(inputs_embeds=x, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits[
            :, -1
        ]
        by_hand = torch.stack([nxt[:, ids].mean(-1) for ids in pt.label_ids], -1)
        torch.testing.assert_close(by_hand, pt(texts), atol=1e-5, rtol=1e-5)
