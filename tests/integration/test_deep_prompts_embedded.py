"""Deep prompts on the embedded backbones: SmolLM2 (Llama, grouped-query attention) against
PEFT's prefix tuning and against a cache-free greedy loop; MiniLM against an eager re-computation."""

import math

import pytest
import torch

from prompt_learning.backbones import load_backbone
from prompt_learning.kv_prefix import KVPrefix, enable_prefixes, prefixed_forward
from prompt_learning.p_tuning_v2 import PTuningV2, PTuningV2Config
from prompt_learning.prefix_tuning import PrefixInit, PrefixTuning, PrefixTuningConfig, split_table
from prompt_learning.text_generation import encode_pairs, greedy_generate

pytestmark = pytest.mark.embedded
TEXTS = ["The acting is superb and the story moves.", "A dull, lifeless film."]


@pytest.fixture(scope="module")
def smollm2():
    return load_backbone("smollm2-135m")


@pytest.fixture(scope="module")
def minilm():
    return load_backbone("minilm-l6")


def test_smollm2_prefix_equals_peft_prefix_tuning(smollm2):
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    peft_model = peft.get_peft_model(
        load_backbone("smollm2-135m").model,
        peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5),
    )
    table = peft_model.prompt_encoder["default"].embedding.weight  # (5, 30·2·3·64): 3 KV heads of 9
    with torch.no_grad():
        table.normal_()
    config = PrefixTuningConfig(num_virtual_tokens=5, init=PrefixInit.RANDOM, reparameterize=False)
    ours = PrefixTuning(smollm2, config=config)
    ours.prompts.set_table(table)
    enc = smollm2.tokenizer(TEXTS, padding=True, return_tensors="pt", padding_side="right")
    with torch.no_grad():
        want = peft_model(**enc).logits
        got = prefixed_forward(smollm2.model, ours.prefix(), enc["input_ids"], enc["attention_mask"]).logits
    real = enc["attention_mask"].bool()
    torch.testing.assert_close(got[real], want[real], atol=1e-4, rtol=1e-4)


def test_smollm2_greedy_generation_with_a_prefix_equals_a_full_forward_per_step(smollm2):
    pt = PrefixTuning(
        smollm2,
        config=PrefixTuningConfig(num_virtual_tokens=4, reparameterize=False, init_text="Write a headline"),
    )
    sources = ["Article: Shares rose in Tokyo.\nHeadline:", "Article: Rain.\nHeadline:"]
    enc = encode_pairs(smollm2.tokenizer, sources, None, seq2seq=False)
    ids, mask = enc["input_ids"], enc["attention_mask"]  # left padded
    with torch.no_grad():
        prefix = pt.prefix()
        got = greedy_generate(smollm2.model, ids, mask, prefix=prefix, max_new_tokens=6)
        for step in range(6):
            nxt = (
                prefixed_forward(smollm2.model, prefix, ids, mask, use_cache=False, logits_to_keep=1)
                .logits[:, -1]
                .argmax(-1)
            )
            assert torch.equal(nxt, got[:, step])
            ids, mask = torch.cat([ids, nxt[:, None]], 1), torch.cat([mask, torch.ones_like(mask[:, :1])], 1)


def test_minilm_prefix_equals_an_eager_recomputation(minilm):
    model = minilm.model  # BertModel
    slot_of = enable_prefixes(model)
    slots = list(dict.fromkeys(slot_of.values()))
    torch.manual_seed(0)
    prefix = KVPrefix(slot_of, *split_table(torch.randn(8, sum(s.width for s in slots)), slots), 8)
    enc = minilm.tokenizer(TEXTS, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    b, t = ids.shape
    with torch.no_grad():
        got = prefixed_forward(model, prefix, ids, mask).last_hidden_state
        h = model.embeddings(input_ids=ids, position_ids=(mask.cumsum(-1) - 1).clamp(min=0) + 8)
        bias = (1.0 - torch.cat([torch.ones(b, 8), mask.float()], 1))[:, None, None] * -1e9
        for layer, s in zip(model.encoder.layer, slots):
            sa = layer.attention.self
            n, d = sa.num_attention_heads, sa.attention_head_size
            split = lambda x: x.view(b, t, n, d).transpose(1, 2)  # noqa: E731, B023 (this iteration)
            k = torch.cat([prefix.keys[s].expand(b, -1, -1, -1), split(sa.key(h))], 2)
            v = torch.cat([prefix.values[s].expand(b, -1, -1, -1), split(sa.value(h))], 2)
            att = torch.softmax(split(sa.query(h)) @ k.transpose(-1, -2) / math.sqrt(d) + bias, -1)
            a = layer.attention.output((att @ v).transpose(1, 2).reshape(b, t, n * d), h)
            h = layer.output(layer.intermediate(a), a)
    torch.testing.assert_close(got[mask.bool()], h[mask.bool()], atol=1e-4, rtol=1e-4)


def test_minilm_p_tuning_v2_left_and_right_padding_agree(minilm):
    m = PTuningV2(minilm, 2, PTuningV2Config(8, max_length=64)).eval()
    right = m.encode({"text": TEXTS})
    right.pop("token_type_ids", None)
    n, width = right["attention_mask"].sum(-1), right["input_ids"].shape[1]
    left_ids = torch.zeros_like(right["input_ids"])
    for i in range(len(TEXTS)):
        left_ids[i, width - n[i] :] = right["input_ids"][i, : n[i]]
    rows = torch.arange(len(TEXTS))
    with torch.no_grad():
        left = m.hidden_states({"input_ids": left_ids, "attention_mask": right["attention_mask"].flip(-1)})
        first = m.hidden_states(right)[:, 0]  # [CLS], the first real token either way
        torch.testing.assert_close(left[rows, width - n], first, atol=1e-4, rtol=1e-4)


def test_minilm_prefix_plus_text_beyond_512_positions_is_an_error(minilm):
    with pytest.raises(
        ValueError,
        match="need 530 positions, but BertForMaskedLM has 512|need 530 positions, but BertModel has 512",
    ):
        PTuningV2(minilm, 2, PTuningV2Config(18, max_length=512))
