"""The key/value prefix mechanism (kv_prefix) on tiny models: equal to the plain backbone at zero
length, equal to an explicit eager computation on an encoder, padding-invariant, length-checked."""

import math

import pytest
import torch
from torch import nn

from prompt_learning.backbones import load_backbone
from prompt_learning.kv_prefix import (
    KVPrefix,
    PrefixError,
    capture_kv,
    enable_prefixes,
    find_slots,
    prefix_attention,
    prefix_attention_eager,
    prefixed_forward,
)
from prompt_learning.positions import PositionError, position_ids
from prompt_learning.prefix_tuning import join_table, split_table

ALL = ["tiny-llama", "tiny-gpt2", "tiny-bert", "tiny-roberta", "tiny-bart"]


def random_prefix(model, length: int, std: float = 1.0, seed: int = 0) -> KVPrefix:
    slot_of = enable_prefixes(model)
    slots = list(dict.fromkeys(slot_of.values()))
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(length, sum(s.width for s in slots), generator=g) * std
    return KVPrefix(slot_of, *split_table(table, slots), length)


def batch(name: str):
    """Two rows, the second padded (right for encoders, left for decoders)."""
    ids = torch.tensor([[5, 6, 7, 8, 9], [11, 12, 13, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    if name in ("tiny-llama", "tiny-gpt2"):
        ids, mask = torch.tensor([[5, 6, 7, 8, 9], [0, 0, 11, 12, 13]]), mask.flip(-1)
    extra = {"decoder_input_ids": torch.tensor([[2, 5, 6], [2, 7, 8]])} if name == "tiny-bart" else {}
    return ids, mask, extra


@pytest.mark.parametrize("name", ALL)
def test_zero_length_prefix_is_the_plain_backbone(name):
    plain = load_backbone(name).model  # untouched: the transformers sdpa attention
    model = load_backbone(name).model
    ids, mask, extra = batch(name)
    if name != "tiny-bart":  # the plain model gets the same (padding-aware) positions; BART takes none
        extra = {**extra, "position_ids": position_ids(mask, 0, plain)}
    with torch.no_grad():
        want = plain(input_ids=ids, attention_mask=mask, **extra).logits
        got = prefixed_forward(model, random_prefix(model, 0), ids, mask, **extra).logits
        none = prefixed_forward(model, None, ids, mask, **extra).logits  # no prefix at all
    real = mask.bool() if name != "tiny-bart" else torch.ones(want.shape[:2], dtype=torch.bool)
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(none[real], want[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_a_prefix_changes_the_output(name):
    model = load_backbone(name).model
    ids, mask, extra = batch(name)
    with torch.no_grad():
        a = prefixed_forward(model, random_prefix(model, 0), ids, mask, **extra).logits
        b = prefixed_forward(model, random_prefix(model, 3), ids, mask, **extra).logits
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2", "tiny-bert", "tiny-roberta"])
def test_left_and_right_padding_give_the_same_logits(name):
    model = load_backbone(name).model
    prefix = random_prefix(model, 3)
    ids = torch.tensor([[5, 6, 7, 8, 9], [11, 12, 13, 0, 0]])
    right = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    left_ids, left = torch.tensor([[5, 6, 7, 8, 9], [0, 0, 11, 12, 13]]), right.flip(-1)
    with torch.no_grad():
        r = prefixed_forward(model, prefix, ids, right).logits
        l_ = prefixed_forward(model, prefix, left_ids, left).logits
    torch.testing.assert_close(r[0], l_[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(r[1, :3], l_[1, 2:], atol=1e-5, rtol=1e-5)


def eager_bert(bert, keys, values, ids, mask, p):
    """BERT's encoder written out by hand, with the prefix keys/values concatenated per layer."""
    b, t = ids.shape
    pos = (mask.cumsum(-1) - 1).clamp(min=0) + p  # real tokens start at position P
    h = bert.embeddings(input_ids=ids, position_ids=pos)  # (B, T, H)
    visible = torch.cat([torch.ones(b, p, dtype=mask.dtype), mask], 1)  # (B, P+T)
    bias = (1.0 - visible[:, None, None, :].float()) * -1e9
    for layer, pk, pv in zip(bert.encoder.layer, keys, values):
        sa = layer.attention.self
        n, d = sa.num_attention_heads, sa.attention_head_size
        split = lambda x: x.view(b, t, n, d).transpose(1, 2)  # noqa: E731, B023  (B, n, T, d); this iteration
        q = split(sa.query(h))
        k = torch.cat([pk.expand(b, -1, -1, -1), split(sa.key(h))], 2)  # (B, n, P+T, d)
        v = torch.cat([pv.expand(b, -1, -1, -1), split(sa.value(h))], 2)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, -1)  # (B, n, T, P+T)
        ctx = (att @ v).transpose(1, 2).reshape(b, t, n * d)
        a = layer.attention.output(ctx, h)
        h = layer.output(layer.intermediate(a), a)
    return h


def test_encoder_prefix_equals_an_eager_recomputation():
    model = load_backbone("tiny-bert").model
    prefix = random_prefix(model, 4)
    slots = list(dict.fromkeys(prefix.slots.values()))
    ids, mask, _ = batch("tiny-bert")
    with torch.no_grad():
        got = prefixed_forward(model.bert, prefix, ids, mask).last_hidden_state
        keys, values = [prefix.keys[s] for s in slots], [prefix.values[s] for s in slots]
        want = eager_bert(model.bert, keys, values, ids, mask, 4)
    torch.testing.assert_close(got[mask.bool()], want[mask.bool()], atol=1e-5, rtol=1e-4)


def test_slots_of_each_family():
    def kinds(name):
        return {(s.stack, s.kind) for s in find_slots(load_backbone(name).model).values()}

    assert kinds("tiny-llama") == {("decoder", "self")}
    assert kinds("tiny-gpt2") == {("decoder", "self")}
    assert kinds("tiny-bert") == {("encoder", "self")}
    assert kinds("tiny-bart") == {("encoder", "self"), ("decoder", "self"), ("decoder", "cross")}
    llama = find_slots(load_backbone("tiny-llama").model)
    assert [s.layer for s in llama.values()] == [0, 1]
    assert {(s.kv_heads, s.head_dim) for s in llama.values()} == {(2, 8)}  # GQA: 2 KV heads for 4 queries


def test_captured_keys_have_the_slot_shapes():
    for name in ("tiny-llama", "tiny-bart"):
        model = load_backbone(name).model
        ids = torch.tensor([[5, 6, 7]])
        extra = {"decoder_input_ids": ids} if name == "tiny-bart" else {}
        kv = capture_kv(model, ids, **extra)
        assert set(kv) == set(find_slots(model).values())
        for s, (k, v) in kv.items():
            assert k.shape == v.shape == (1, s.kv_heads, 3, s.head_dim)
        table = join_table(kv, list(kv))
        keys, values = split_table(table, list(kv))
        for s in kv:
            torch.testing.assert_close(keys[s], kv[s][0])
            torch.testing.assert_close(values[s], kv[s][1])


@pytest.mark.parametrize("kind", ["self", "cross"])
def test_bart_decoder_prefixes_each_matter(kind):
    model = load_backbone("tiny-bart").model
    full = random_prefix(model, 3)
    ids, mask, extra = batch("tiny-bart")
    only = KVPrefix(
        full.slots,
        {s: k for s, k in full.keys.items() if s.kind == kind},
        {s: v for s, v in full.values.items() if s.kind == kind},
        3,
    )
    with torch.no_grad():
        base = prefixed_forward(model, None, ids, mask, **extra).logits
        got = prefixed_forward(model, only, ids, mask, **extra).logits
    assert (base - got).abs().max() > 1e-3


def test_prefix_plus_text_longer_than_the_positions_is_an_error():
    model = load_backbone("tiny-gpt2").model  # 128 positions
    prefix = random_prefix(model, 100)
    ids = torch.ones(1, 40, dtype=torch.long)
    with pytest.raises(PositionError, match="100 prefix tokens \\+ max_length 40 need 140 positions"):
        prefixed_forward(model, prefix, ids)
    roberta = load_backbone("tiny-roberta").model  # 130 embeddings, 128 usable after padding_idx
    with pytest.raises(PositionError, match="has 128"):
        prefixed_forward(roberta, random_prefix(roberta, 100), ids[:, :29])


def test_a_model_without_attention_layers_is_refused():
    class Plain(nn.Module):
        config = type("C", (), {"is_encoder_decoder": False})()

        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

    with pytest.raises(PrefixError, match="found no attention layers"):
        find_slots(Plain())


def test_gradients_reach_every_layer_of_the_prefix_not_the_backbone():
    model = load_backbone("tiny-llama").model.requires_grad_(False)
    slot_of = enable_prefixes(model)
    slots = list(dict.fromkeys(slot_of.values()))
    table = torch.randn(3, sum(s.width for s in slots), requires_grad=True)
    ids, mask, _ = batch("tiny-llama")
    prefix = KVPrefix(slot_of, *split_table(table, slots), 3)
    prefixed_forward(model, prefix, ids, mask).logits.sum().backward()
    per_slot = table.grad.split([s.width for s in slots], dim=1)
    assert all(g.abs().sum() > 0 for g in per_slot)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_the_fast_path_equals_the_eager_formula(kv_heads):
    """sdpa over [K_p; K], [V_p; V] with the mask widened by P columns = softmax(Q [K_p; K]ᵀ/√d) [V_p; V]."""
    g = torch.Generator().manual_seed(0)
    B, H, T, P, d = 2, 4, 5, 3, 8
    q = torch.randn(B, H, T, d, generator=g)
    k, v = torch.randn(B, kv_heads, T, d, generator=g), torch.randn(B, kv_heads, T, d, generator=g)
    pk, pv = torch.randn(1, kv_heads, P, d, generator=g), torch.randn(1, kv_heads, P, d, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    module = nn.Module()
    module.is_causal, module.num_key_value_groups = False, H // kv_heads
    slot = object()
    prefix = KVPrefix({module: slot}, {slot: pk}, {slot: pv}, P)
    bias = torch.zeros(B, 1, T, T).masked_fill(~mask.bool()[:, None, None, :], float("-inf"))  # (B, 1, T, T)
    fast, _ = prefix_attention(module, q, k, v, bias, kv_prefix=prefix, dropout=0.0, scaling=d**-0.5)
    eager = prefix_attention_eager(q, k, v, pk, pv, mask)  # (B, H, T, d)
    torch.testing.assert_close(fast.transpose(1, 2), eager, atol=1e-5, rtol=1e-5)  # sdpa returns (B, T, H, d)
    assert slot in prefix.reached


def test_a_prefix_that_would_never_reach_its_layers_is_an_error():
    model = load_backbone("tiny-llama").model
    prefix = random_prefix(model, 3)
    model.set_attn_implementation("sdpa")  # someone switched the attention back
    ids, mask, _ = batch("tiny-llama")
    with pytest.raises(PrefixError, match="never reach 2 attention layer.*enable_prefixes"):
        prefixed_forward(model, prefix, ids, mask)
    enable_prefixes(model)
    prefixed_forward(model, prefix, ids, mask)


def test_a_prefix_is_a_gated_interpolation():
    """He et al. 2022: Attn(q, [K_p; K], [V_p; V]) = (1 − λ) Attn(q, K, V) + λ Attn(q, K_p, V_p)."""
    g = torch.Generator().manual_seed(1)
    B, H, T, P, d = 2, 4, 5, 3, 8
    q, k, v = (torch.randn(B, H, T, d, generator=g) for _ in range(3))
    pk, pv = (torch.randn(1, H, P, d, generator=g) for _ in range(2))
    out = prefix_attention_eager(q, k, v, pk, pv)
    s_p, s_x = q @ pk.transpose(-1, -2) / math.sqrt(d), q @ k.transpose(-1, -2) / math.sqrt(d)
    lam = torch.sigmoid(torch.logsumexp(s_p, -1) - torch.logsumexp(s_x, -1))[..., None]
    torch.testing.assert_close((1 - lam) * (s_x.softmax(-1) @ v) + lam * (s_p.softmax(-1) @ pv), out)
