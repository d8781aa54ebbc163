"""LoRA through PEFT, read by the cloze: only the low-rank updates train, and it starts as zero-shot."""

import pytest
import torch

from prompt_learning import ClozeClassifier, Verbalizer, fit, load_prompt, save_prompt
from prompt_learning.backbones import load_backbone
from prompt_learning.lora import LoRACloze, LoRAConfig
from prompt_learning.method import InputError

WORDS = Verbalizer({"negative": "bad", "positive": "good"})
TEMPLATE = "{text} It was {mask}."


def test_only_the_low_rank_updates_train_and_count_r_times_in_plus_out():
    b = load_backbone("tiny-llama")
    clf = LoRACloze(b, TEMPLATE, WORDS, LoRAConfig(r=4))
    trained = {n for n, p in clf.named_parameters() if p.requires_grad}
    assert trained and all("lora_A" in n or "lora_B" in n for n in trained)
    expected = sum(
        4 * (m.in_features + m.out_features)
        for n, m in b.model.named_modules()
        if n.endswith(("q_proj", "v_proj")) and hasattr(m, "in_features") and "lora" not in n
    )
    assert clf.trainable_parameters() == expected


def test_before_training_it_is_the_zero_shot_cloze_and_training_changes_it(sentiment_toy):
    b = load_backbone("tiny-llama")
    texts = ["a fine film", "dull and long"]
    zero = ClozeClassifier(b, TEMPLATE, WORDS)(texts)
    clf = LoRACloze(b, TEMPLATE, WORDS, LoRAConfig(r=4))
    torch.testing.assert_close(clf(texts), zero)
    frozen = {n: p.detach().clone() for n, p in b.model.named_parameters() if "lora_" not in n}
    fit(clf, sentiment_toy, steps=3, lr=1e-2, batch_size=4, mixed_precision="no", progress=False)
    assert not torch.allclose(clf(texts), zero)
    assert all(torch.equal(p, frozen[n]) for n, p in b.model.named_parameters() if "lora_" not in n)


def test_seeded_and_round_trips_through_a_checkpoint(tmp_path):
    texts = ["a fine film", "dull and long"]
    a = LoRACloze(load_backbone("tiny-llama"), TEMPLATE, WORDS, LoRAConfig(r=2, seed=3))
    with torch.no_grad():
        for n, p in a.named_parameters():
            if "lora_B" in n:
                p.normal_()  # as if trained: B no longer zero
    save_prompt(a, tmp_path / "lora")
    b = load_prompt(tmp_path / "lora", load_backbone("tiny-llama"))
    assert isinstance(b, LoRACloze) and b.config.r == 2
    torch.testing.assert_close(b(texts), a(texts))
    again = LoRACloze(load_backbone("tiny-llama"), TEMPLATE, WORDS, LoRAConfig(r=2, seed=3))
    a_of = lambda m: [p for n, p in m.named_parameters() if "lora_A" in n]  # noqa: E731
    assert all(torch.equal(x, y) for x, y in zip(a_of(again), a_of(a)))


def test_bad_set_ups_are_refused_before_compute():
    b = load_backbone("tiny-llama")
    with pytest.raises(InputError, match="no linear layers named"):
        LoRACloze(b, TEMPLATE, WORDS, LoRAConfig(target_modules=["query"]))
    with pytest.raises(InputError, match="positive integer"):
        LoRAConfig(r=0)
    with pytest.raises(InputError, match="list of layer names"):
        LoRAConfig(target_modules="q_proj")
    LoRACloze(b, TEMPLATE, WORDS)
    with pytest.raises(InputError, match="already carries LoRA"):
        LoRACloze(b, TEMPLATE, WORDS)
