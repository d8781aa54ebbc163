"""The answer slot: one readout and one set-up check for every method that reads label words."""

import pytest
import torch

from prompt_learning import InputError, Template, TemplateError, load_backbone
from prompt_learning.backbones import Backbone
from prompt_learning.kv_prefix import KVPrefix, enable_prefixes
from prompt_learning.readout import answer_logits, check_lm_backbone, lm_head, masked_lm_logits_at


def batch(backbone, template="{text} It was {mask}."):
    causal = backbone.kind == "causal-lm"
    return Template(template).encode(
        backbone.tokenizer, {"text": ["a fine film", "boring"]}, 32, causal=causal
    )


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-roberta"])
def test_the_head_on_the_mask_positions_equals_the_full_model_there(name):
    b = load_backbone(name)
    enc = batch(b)
    rows = torch.arange(2)
    with torch.no_grad():
        full = b.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        got = answer_logits(b.model, False, enc["input_ids"], enc["attention_mask"], enc["mask_pos"])
    assert lm_head(b.model) is not None
    torch.testing.assert_close(got, full[rows, enc["mask_pos"]], atol=1e-5, rtol=1e-5)


def test_several_positions_per_row_are_read_at_once():
    b = load_backbone("tiny-bert")
    enc = batch(b)
    rows, positions = torch.tensor([0, 0, 1]), torch.tensor([1, 2, 1])
    with torch.no_grad():
        full = b.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        got = masked_lm_logits_at(b.model, enc["input_ids"], enc["attention_mask"], positions, rows=rows)
    torch.testing.assert_close(got, full[rows, positions], atol=1e-5, rtol=1e-5)


def test_a_causal_lm_is_read_after_the_last_token_of_a_left_padded_batch():
    b = load_backbone("tiny-llama")
    enc = batch(b, "{text} It was {mask}")
    with torch.no_grad():
        got = answer_logits(b.model, True, enc["input_ids"], enc["attention_mask"], enc["mask_pos"])
        for i in range(2):  # each row alone, unpadded
            ids = enc["input_ids"][i][enc["attention_mask"][i].bool()][None]
            alone = b.model(input_ids=ids).logits[0, -1]
            torch.testing.assert_close(got[i], alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name,causal", [("tiny-llama", True), ("tiny-bert", False)])
def test_an_empty_prefix_reads_the_same_slot(name, causal):
    b = load_backbone(name)
    slot_of = enable_prefixes(b.model)
    empty = KVPrefix(slot_of, {}, {}, 0, True)
    enc = batch(b, "{text} It was {mask}" if causal else "{text} It was {mask}.")
    args = (b.model, causal, enc["input_ids"], enc["attention_mask"], enc["mask_pos"])
    with torch.no_grad():
        torch.testing.assert_close(
            answer_logits(*args, prefix=empty), answer_logits(*args), atol=1e-5, rtol=1e-5
        )


class Refused(InputError):
    pass


def test_the_set_up_check_refuses_what_the_readout_cannot_read():
    llama, bert = load_backbone("tiny-llama"), load_backbone("tiny-bert")
    encoder = Backbone("tiny-bert-encoder", "encoder", bert.model.bert, bert.tokenizer)
    with pytest.raises(Refused, match="needs an LM head.*is a encoder: use a masked or causal LM"):
        check_lm_backbone(encoder, Template("{text} It was {mask}."), "the method", Refused)
    with pytest.raises(TemplateError, match="virtual tokens"):
        check_lm_backbone(bert, Template("[P0] {text} It was {mask}."), "the method")
    check_lm_backbone(bert, Template("[P0] {text} It was {mask}."), "the method", virtual_tokens=True)
    with pytest.raises(TemplateError):
        check_lm_backbone(llama, Template("{mask} was {text}"), "the method")  # a causal slot must end it
    check_lm_backbone(llama, Template("{text} It was {mask}"), "the method")
    check_lm_backbone(llama, None, "the method")  # generation: no template to check
