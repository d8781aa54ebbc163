"""The attention kernel choice (attention) and the once-per-call weight cast (precision) on tiny
models: the written-out formula equals transformers' sdpa in values and gradients, is taken only when
gradients flow on a CPU, and casting frozen weights once gives autocast's numbers bit for bit."""

import pytest
import torch
from torch import nn
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from prompt_learning import attention
from prompt_learning.attention import attend, attention_formula
from prompt_learning.backbones import load_backbone
from prompt_learning.kv_prefix import ATTENTION_NAME
from prompt_learning.precision import autocast, frozen_weights_cast

TINY = ["tiny-llama", "tiny-gpt2", "tiny-bert", "tiny-roberta", "tiny-bart"]


class Layer(nn.Module):
    """What the attention functions read off a layer: is_causal and num_key_value_groups."""

    def __init__(self, causal: bool, groups: int = 1):
        super().__init__()
        self.is_causal, self.num_key_value_groups = causal, groups


def qkv(heads=4, kv_heads=4, q_len=5, kv_len=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, heads, q_len, 8, generator=g, requires_grad=True)
    k = torch.randn(2, kv_heads, kv_len, 8, generator=g, requires_grad=True)
    v = torch.randn(2, kv_heads, kv_len, 8, generator=g, requires_grad=True)
    return q, k, v


def padding_mask(q_len=5, kv_len=5, causal=True) -> torch.Tensor:
    """(2, 1, Q, K) bool: row 0 sees every key (causally), row 1 hides its first two (left padding)."""
    keep = torch.ones(2, 1, q_len, kv_len, dtype=torch.bool)
    if causal:
        keep &= torch.ones(q_len, kv_len, dtype=torch.bool).tril(kv_len - q_len)
    keep[1, :, :, :2] = False
    return keep


CASES = {
    "causal, no mask": dict(layer=Layer(True), mask=None),
    "not causal, no mask": dict(layer=Layer(False), mask=None),
    "causal with padding (bool)": dict(layer=Layer(True), mask=padding_mask()),
    "padding as an additive float mask": dict(
        layer=Layer(False),
        mask=torch.zeros(2, 1, 5, 5).masked_fill(~padding_mask(causal=False), float("-inf")),
    ),
    "grouped-query heads": dict(layer=Layer(True, groups=2), mask=padding_mask(), kv_heads=2),
    "one query over a longer past": dict(layer=Layer(True), mask=None, q_len=1, kv_len=6),
}


@pytest.mark.parametrize("case", CASES)
def test_the_formula_equals_sdpa_in_values_and_gradients(case):
    c = CASES[case]
    shape = dict(kv_heads=c.get("kv_heads", 4), q_len=c.get("q_len", 5), kv_len=c.get("kv_len", 5))
    outs, grads = [], []
    for fn in (sdpa_attention_forward, attention_formula):
        q, k, v = qkv(**shape)
        out, _ = fn(c["layer"], q, k, v, c["mask"], scaling=8**-0.5)
        weights = torch.arange(out.numel(), dtype=out.dtype).reshape(out.shape).sin()
        (out * weights).sum().backward()
        outs.append(out)
        grads.append([q.grad, k.grad, v.grad])
    assert outs[0].shape == outs[1].shape  # (B, T, H, d)
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    for a, b in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_the_formula_runs_only_when_gradients_flow_on_a_cpu(monkeypatch):
    calls = []
    monkeypatch.setattr(
        attention, "attention_formula", lambda *a, **k: calls.append("formula") or attention_formula(*a, **k)
    )
    q, k, v = qkv()
    attend(Layer(True), q, k, v, None)
    assert calls == ["formula"]
    with torch.no_grad():
        attend(Layer(True), q, k, v, None)
    attend(Layer(True), q.detach(), k.detach(), v.detach(), None)  # nothing to differentiate
    assert calls == ["formula"]


@pytest.mark.parametrize("name", TINY)
def test_every_backbone_attends_through_the_library(name):
    assert load_backbone(name).model.config._attn_implementation == ATTENTION_NAME


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-bert", "tiny-bart"])
def test_a_backbone_trains_as_it_does_under_sdpa(name):
    """Loss and input gradients of a whole model: the library's attention against transformers'."""
    results = []
    for implementation in (ATTENTION_NAME, "sdpa"):
        model = load_backbone(name).model
        model.set_attn_implementation(implementation)
        ids = torch.tensor([[5, 6, 7, 8, 9], [11, 12, 13, 14, 15]])
        mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
        if name == "tiny-llama":
            mask = mask.flip(-1)  # decoders pad on the left
        embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        extra = {"decoder_input_ids": torch.tensor([[2, 5, 6], [2, 7, 8]])} if name == "tiny-bart" else {}
        out = model(inputs_embeds=embeds, attention_mask=mask, **extra)
        hidden = out.logits if hasattr(out, "logits") else out.last_hidden_state
        last = hidden[:, -1].float()
        last.pow(2).sum().backward()
        results.append((last.detach(), embeds.grad))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-5, rtol=1e-4)


def logits_and_grad(model, ids):
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    with autocast("cpu", "bf16"):
        logits = model(inputs_embeds=embeds).logits[:, -1].float()
    logits.logsumexp(-1).sum().backward()
    return logits.detach(), embeds.grad


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_casting_frozen_weights_once_gives_autocasts_numbers_bit_for_bit(name):
    model = load_backbone(name).model.requires_grad_(False)
    ids = torch.tensor([[5, 6, 7, 8, 9], [11, 12, 13, 14, 15]])
    plain = logits_and_grad(model, ids)
    before = {n: p for n, p in model.named_parameters()}
    with frozen_weights_cast(model, "cpu", "bf16"):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
        embedding = model.get_input_embeddings().weight
        assert embedding.dtype == torch.float32  # a tied LM head got a copy
        cast = logits_and_grad(model, ids)
    assert torch.equal(plain[0], cast[0]) and torch.equal(plain[1], cast[1])
    after = {n: p for n, p in model.named_parameters()}
    assert before.keys() == after.keys() and all(before[n] is after[n] for n in before)
    assert all(p.dtype == torch.float32 for p in after.values())


def test_the_cast_leaves_trainable_weights_and_full_precision_alone():
    model = load_backbone("tiny-llama").model.requires_grad_(False)
    head = model.lm_head
    head.weight = nn.Parameter(head.weight.detach().clone())  # trainable, untied
    with frozen_weights_cast(model, "cpu", "bf16"):
        assert head.weight.dtype == torch.float32 and head.weight.requires_grad
    with frozen_weights_cast(model, "cpu", "no"):
        assert all(p.dtype == torch.float32 for p in model.parameters())


def test_the_weights_come_back_when_the_block_raises():
    model = load_backbone("tiny-llama").model.requires_grad_(False)
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    with pytest.raises(RuntimeError):
        with frozen_weights_cast(model, "cpu", "bf16"):
            raise RuntimeError("inside")
    assert [m.weight for m in model.modules() if isinstance(m, nn.Linear)] == weights
