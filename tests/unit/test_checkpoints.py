"""Prompt checkpoints: round trips give identical logits, other backbones are refused, writes are atomic."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from prompt_learning import Verbalizer, fit, load_backbone
from prompt_learning import checkpoints as ck
from prompt_learning.checkpoints import CheckpointError, load_prompt, read_config, save_prompt
from prompt_learning.p_tuning import PTuning, PTuningConfig
from prompt_learning.soft_prompts import PromptTuning, PromptTuningConfig

WORDS = Verbalizer({"negative": "bad", "positive": "good"})
TEXTS = ["a fine film", "a movie that was boring and dull"]


def edit_config(folder, changes: dict) -> None:
    """Change fields of a saved checkpoint's JSON half, as an older or a tampered file would have them."""
    path = folder / "prompt_config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def trained(method, data):
    fit(method, data, steps=3, lr=0.05, batch_size=4, seed=0, progress=False)  # move off the initial values
    return method.eval()


def prompt_tuning(name="tiny-llama", **kw):
    return PromptTuning(
        load_backbone(name),
        "{text} It was {mask}.",
        WORDS,
        PromptTuningConfig(num_virtual_tokens=4, init_text="the movie was", max_length=64, **kw),
    )


def p_tuning(name="tiny-llama", **kw):
    return PTuning(
        load_backbone(name), "[P0] {text} [P1] It was {mask}.", WORDS, PTuningConfig(max_length=64, **kw)
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: prompt_tuning(),
        lambda: prompt_tuning("tiny-bert"),
        lambda: prompt_tuning(readout="head"),
        lambda: p_tuning(),
        lambda: p_tuning(encoder="MLP"),
        lambda: p_tuning("tiny-roberta", encoder="NONE"),
    ],
    ids=["pt", "pt-mlm", "pt-head", "ptuning-lstm", "ptuning-mlp", "free-mlm"],
)
def test_round_trip_gives_identical_logits(make, sentiment_toy, tmp_path):
    method = trained(make(), sentiment_toy)
    save_prompt(method, tmp_path / "ckpt")
    again = load_prompt(tmp_path / "ckpt", load_backbone(method.backbone.name))
    with torch.no_grad():
        assert torch.equal(method(TEXTS), again(TEXTS))
    assert type(again) is type(method) and again.config == method.config


def test_only_prompt_parameters_are_saved(sentiment_toy, tmp_path):
    method = trained(prompt_tuning(), sentiment_toy)
    save_prompt(method, tmp_path / "ckpt")
    tensors = load_file(tmp_path / "ckpt" / "prompt.safetensors")
    assert list(tensors) == ["prompt"] and tensors["prompt"].shape == (4, 32)
    meta = read_config(tmp_path / "ckpt")
    assert meta["backbone"]["name"] == "tiny-llama" and meta["spec"]["template"] == "{text} It was {mask}."
    assert meta["method"] == "PromptTuning" and meta["format"] == 3


def test_a_checkpoint_of_the_earlier_format_still_loads(sentiment_toy, tmp_path):
    """Format 2 named the method by module and class; it loads by the class name wherever it lives."""
    method = trained(prompt_tuning(), sentiment_toy)
    save_prompt(method, tmp_path / "ckpt")
    edit_config(
        tmp_path / "ckpt", {"format": 2, "method": "prompt_learning.somewhere_it_used_to_be:PromptTuning"}
    )
    again = load_prompt(tmp_path / "ckpt", load_backbone("tiny-llama"))
    with torch.no_grad():
        assert torch.equal(method(TEXTS), again(TEXTS))


def test_an_unknown_method_name_is_refused_with_the_known_ones(tmp_path):
    save_prompt(prompt_tuning(), tmp_path / "ckpt")
    edit_config(tmp_path / "ckpt", {"method": "NoSuchMethod"})
    with pytest.raises(CheckpointError, match="cannot rebuild.*PromptTuning"):
        load_prompt(tmp_path / "ckpt", load_backbone("tiny-llama"))


def test_p_tuning_encoder_is_saved_and_reloaded(sentiment_toy, tmp_path):
    method = trained(p_tuning(encoder="LSTM"), sentiment_toy)
    save_prompt(method, tmp_path / "encoder")
    again = load_prompt(tmp_path / "encoder", load_backbone("tiny-llama"))
    assert again.encoder is not None  # the encoder comes back, so training can go on
    for (name, p), (_, q) in zip(method.encoder.state_dict().items(), again.encoder.state_dict().items()):
        assert torch.equal(p, q), name


def test_frozen_encoder_saves_a_plain_prompt(sentiment_toy, tmp_path):
    method = trained(p_tuning(encoder="LSTM"), sentiment_toy)
    with torch.no_grad():
        want = method(TEXTS)
    save_prompt(method, tmp_path / "encoder")
    save_prompt(method.freeze_encoder(), tmp_path / "plain")
    assert list(load_file(tmp_path / "plain" / "prompt.safetensors")) == ["prompt"]
    plain = (tmp_path / "plain" / "prompt.safetensors").stat().st_size
    assert plain * 20 < (tmp_path / "encoder" / "prompt.safetensors").stat().st_size
    again = load_prompt(tmp_path / "plain", load_backbone("tiny-llama"))
    assert again.encoder is None and again.encoder_frozen
    with torch.no_grad():
        torch.testing.assert_close(again(TEXTS), want)


@pytest.mark.parametrize("other", ["tiny-gpt2", "tiny-bert"])
def test_other_backbone_is_refused(other, tmp_path):
    save_prompt(prompt_tuning(), tmp_path / "ckpt")
    with pytest.raises(
        CheckpointError,
        match=r"trained on backbone 'tiny-llama'.*not on '" + other + r"'.*load_backbone\('tiny-llama'\)",
    ):
        load_prompt(tmp_path / "ckpt", load_backbone(other))


def test_same_name_but_other_shape_is_refused(tmp_path):
    save_prompt(prompt_tuning(), tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / "prompt_config.json").read_text())
    meta["backbone"]["hidden_size"] = 64  # e.g. a re-configured model published under the same name
    (tmp_path / "ckpt" / "prompt_config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="hidden_size"):
        load_prompt(tmp_path / "ckpt", load_backbone("tiny-llama"))


def test_overwrite_replaces_the_checkpoint(sentiment_toy, tmp_path):
    save_prompt(prompt_tuning(), tmp_path / "ckpt")
    method = trained(prompt_tuning(), sentiment_toy)
    save_prompt(method, tmp_path / "ckpt")
    again = load_prompt(tmp_path / "ckpt", load_backbone("tiny-llama"))
    assert torch.equal(again.prompt, method.prompt)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary folders left behind


def test_failed_write_leaves_nothing_half_written(tmp_path, monkeypatch):
    save_prompt(prompt_tuning(), tmp_path / "ckpt")
    before = (tmp_path / "ckpt" / "prompt.safetensors").read_bytes()

    def crash(tensors, path, metadata=None):
        save_file(tensors, path, metadata)  # the weights are written …
        raise OSError("disk full")  # … then the write fails

    monkeypatch.setattr(ck, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_prompt(prompt_tuning(init="RANDOM"), tmp_path / "ckpt")
    with pytest.raises(OSError, match="disk full"):
        save_prompt(prompt_tuning(), tmp_path / "new")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # "new" never appears, no temp folders stay
    assert (tmp_path / "ckpt" / "prompt.safetensors").read_bytes() == before  # the old one is intact


def test_not_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="prompt_config.json is missing"):
        load_prompt(tmp_path, load_backbone("tiny-llama"))


def test_tampered_parameters_are_refused(tmp_path):
    save_prompt(prompt_tuning(), tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "prompt.safetensors"
    save_file({"prompt": torch.zeros(4, 32), "extra": torch.zeros(1)}, weights)
    with pytest.raises(CheckpointError, match="do not match"):
        load_prompt(tmp_path / "ckpt", load_backbone("tiny-llama"))
    save_file({"prompt": torch.zeros(5, 32)}, weights)
    with pytest.raises(CheckpointError, match="shape"):
        load_prompt(tmp_path / "ckpt", load_backbone("tiny-llama"))


def test_foreign_method_class_is_refused(tmp_path):
    save_prompt(prompt_tuning(), tmp_path / "ckpt")
    edit_config(tmp_path / "ckpt", {"method": "os:system"})
    with pytest.raises(CheckpointError, match="not part of prompt_learning"):
        load_prompt(tmp_path / "ckpt", load_backbone("tiny-llama"))


def test_method_without_a_spec_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint_spec"):
        save_prompt(torch.nn.Linear(2, 2), tmp_path / "ckpt")
