"""P-tuning v2 on tiny encoders: deep / shallow / chosen layers, the head classifier with prompts,
full fine-tuning, the optional MLP, errors."""

import pytest
import torch

from prompt_learning.backbones import Backbone, load_backbone
from prompt_learning.heads import HeadClassifier, HeadConfig
from prompt_learning.kv_prefix import PrefixError
from prompt_learning.p_tuning_v2 import PTuningV2, PTuningV2Config

TEXTS = ["a fine film", "a very dull plot and bad actors"]


def tiny(name: str = "tiny-bert") -> Backbone:
    return load_backbone(name)


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-roberta"])
def test_texts_to_class_logits(name):
    m = PTuningV2(tiny(name), 3, PTuningV2Config(4, max_length=32))
    assert m(TEXTS).shape == (2, 3)


def test_trainable_parameters_are_the_prompts_and_the_head():
    m = PTuningV2(tiny(), 2, PTuningV2Config(4, max_length=32))
    per_layer = 2 * 32  # a key and a value of width 32 (4 heads × 8)
    assert m.trainable_parameters() == 4 * 2 * per_layer + (32 * 2 + 2)
    assert {n.split(".")[0] for n, p in m.named_parameters() if p.requires_grad} == {"prompts", "head"}


@pytest.mark.parametrize(
    "layers, expected", [(None, [0, 1]), (1, [0]), (2, [0, 1]), ([1], [1]), (range(1, 2), [1])]
)
def test_prompts_go_into_the_chosen_layers(layers, expected):
    m = PTuningV2(tiny(), 2, PTuningV2Config(4, layers=layers, max_length=32))
    assert [s.layer for s in m.slots] == expected
    assert sorted(s.layer for s in m.prefix().keys) == expected


def test_p_tuning_v2_is_the_head_classifier_with_prompts_in_the_layers():
    """The same head, the same pooling; only the keys/values of the chosen layers differ."""
    b = tiny()
    m = PTuningV2(b, 2, PTuningV2Config(3, max_length=32)).eval()
    head = HeadClassifier(b, 2, HeadConfig(train_backbone=False, pooling="first", max_length=32)).eval()
    assert isinstance(m, HeadClassifier) and torch.equal(m.head.weight, head.head.weight)
    enc = b.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        cls = b.model.bert(**enc).last_hidden_state[:, 0]
        torch.testing.assert_close(head(TEXTS), head.head(cls), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(m(TEXTS), head(TEXTS), atol=1e-4)  # the prompts change the [CLS] vector


def test_full_fine_tuning_trains_the_encoder_too():
    m = PTuningV2(tiny(), 2, PTuningV2Config(2, train_backbone=True, max_length=32))
    assert (
        m.trainable_parameters()
        == sum(p.numel() for p in m.encoder.parameters()) + 66 + m.prompts.table.numel()
    )


def test_reparameterisation_is_optional_and_collapses():
    m = PTuningV2(tiny(), 2, PTuningV2Config(4, reparameterize=True, reparam_hidden=16, max_length=32)).eval()
    assert m.prompts.reparameterized
    with torch.no_grad():
        before = m(TEXTS)
        m.prompts.collapse()
        torch.testing.assert_close(m(TEXTS), before)


def test_first_token_is_read_with_left_padding_too():
    b = tiny()
    m = PTuningV2(b, 2, PTuningV2Config(3, max_length=32)).eval()
    right = m.encode({"text": TEXTS})
    n = right["attention_mask"].sum(-1)
    width = right["input_ids"].shape[1]
    left_ids = torch.zeros_like(right["input_ids"])
    for i in range(2):
        left_ids[i, width - n[i] :] = right["input_ids"][i, : n[i]]
    left_mask = right["attention_mask"].flip(-1)
    with torch.no_grad():
        left = m.hidden_states({"input_ids": left_ids, "attention_mask": left_mask})[
            torch.arange(2), width - n
        ]
        first = m.hidden_states(right)[:, 0]
        torch.testing.assert_close(left, first, atol=1e-5, rtol=1e-5)


def test_a_training_step_moves_prompts_and_head_only():
    b = tiny()
    m = PTuningV2(b, 2, PTuningV2Config(4, max_length=32))
    frozen = {k: v.clone() for k, v in b.model.state_dict().items()}
    loss = torch.nn.functional.cross_entropy(m(TEXTS), torch.tensor([1, 0]))
    loss.backward()
    assert m.prompts.table.grad.abs().sum() > 0 and m.head.weight.grad.abs().sum() > 0
    torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1).step()
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in frozen.items())


def test_bad_configurations_are_refused():
    with pytest.raises(PrefixError, match="classifies with an encoder"):
        PTuningV2(tiny("tiny-gpt2"), 2)
    with pytest.raises(PrefixError, match="layers=3"):
        PTuningV2(tiny(), 2, PTuningV2Config(4, layers=3, max_length=32))
    with pytest.raises(
        PrefixError, match=r"layers \[0, 5\]: choose at least one of the encoder's layers 0..1"
    ):
        PTuningV2(tiny(), 2, PTuningV2Config(4, layers=[0, 5], max_length=32))
    with pytest.raises(ValueError, match="at least two classes"):
        PTuningV2(tiny(), 1, PTuningV2Config(4, max_length=32))
    with pytest.raises(ValueError, match="need 140 positions"):  # before any compute
        PTuningV2(tiny(), 2, PTuningV2Config(20, max_length=120))
    with pytest.raises(ValueError, match="non-negative"):
        PTuningV2(tiny(), 2, PTuningV2Config(-2, max_length=32))
    with pytest.raises(ValueError, match="pooling must be one of"):
        PTuningV2(tiny(), 2, PTuningV2Config(4, pooling="max", max_length=32))
    with pytest.raises(PrefixError, match="HeadClassifier"):
        PTuningV2Config(0)


def test_mean_pooling_averages_the_real_tokens_only():
    b = tiny()
    m = PTuningV2(b, 2, PTuningV2Config(2, pooling="mean", max_length=32)).eval()
    enc = m.encode({"text": TEXTS})
    with torch.no_grad():
        hidden = m.hidden_states(enc)
        want = torch.stack([hidden[i, :n].mean(0) for i, n in enumerate(enc["attention_mask"].sum(-1))])
        torch.testing.assert_close(m.pooled({"text": TEXTS}), want, atol=1e-5, rtol=1e-5)


def test_initial_values_follow_the_seed_not_the_global_random_state():
    from prompt_learning.backbones import load_backbone as load
    from prompt_learning.p_tuning_v2 import PTuningV2, PTuningV2Config

    def state(seed, noise):
        torch.manual_seed(noise)  # whatever ran before must not matter
        m = PTuningV2(load("tiny-bert"), 3, PTuningV2Config(num_virtual_tokens=2, max_length=32, seed=seed))
        return torch.cat([p.detach().flatten() for p in m.parameters() if p.requires_grad])

    assert torch.equal(state(0, noise=1), state(0, noise=2))
    assert not torch.equal(state(0, noise=1), state(1, noise=1))


def test_deep_prompts_are_a_key_value_prefix_in_prefix_tunings_layout():
    """Chapter 8: P-tuning v2's per-layer prompts, laid out as prefix tuning's keys and values, run the same."""
    from prompt_learning.kv_prefix import KVPrefix, prefixed_forward
    from prompt_learning.prefix_tuning import split_table

    m = PTuningV2(tiny(), 2, PTuningV2Config(3, max_length=32)).eval()
    keys, values = split_table(m.prompts.full_table(), m.slots)
    batch = m.encode({"text": TEXTS})
    with torch.no_grad():
        want = prefixed_forward(m.encoder, KVPrefix(m.slot_of, keys, values, 3), **batch).last_hidden_state
        torch.testing.assert_close(m.hidden_states(batch), want)
