"""The method contract: every method × every backbone family it serves, built, trained, saved and loaded alike."""

import copy
import json

import pytest
import torch
from datasets import Dataset

from prompt_learning import (
    PET,
    AutoPrompt,
    AutoPromptConfig,
    LoRACloze,
    LoRAConfig,
    MultiTokenCloze,
    CheckpointError,
    ClozeClassifier,
    HeadClassifier,
    HeadConfig,
    PETConfig,
    PrefixTuning,
    PrefixTuningConfig,
    PromptLearningConfig,
    PromptMethod,
    PromptTuning,
    PromptTuningConfig,
    PTuning,
    PTuningConfig,
    PTuningV2,
    PTuningV2Config,
    Verbalizer,
    fit,
    load_backbone,
    load_prompt,
    save_prompt,
)
from prompt_learning.backbones import Backbone
from prompt_learning.in_context import in_context_classifier
from prompt_learning.precision import auto_precision

V = Verbalizer({"negative": "bad", "positive": "good"})
T = "{text} It was {mask}."
LABELS = ["negative", "positive"]
TEXTS = ["a fine film", "a movie that was boring and dull", "i loved it"]

# name → (backbone families, build(backbone)); every method the book trains
METHODS = {
    "pet-all": (
        ("tiny-llama", "tiny-bert", "tiny-roberta"),
        lambda b: PET(b, T, V, PETConfig(max_length=48)),
    ),
    "pet-frozen": (
        ("tiny-llama", "tiny-roberta"),
        lambda b: PET(b, T, V, PETConfig(tune="frozen", max_length=48)),
    ),
    "prompt-tuning": (
        ("tiny-llama", "tiny-gpt2", "tiny-bert"),
        lambda b: PromptTuning(b, T, V, PromptTuningConfig(4, init="RANDOM", max_length=48)),
    ),
    "prompt-tuning-head": (
        ("tiny-llama", "tiny-bert"),
        lambda b: PromptTuning(
            b, T, LABELS, PromptTuningConfig(4, init="SAMPLE_VOCAB", readout="head", max_length=48)
        ),
    ),
    "p-tuning-lstm": (
        ("tiny-llama", "tiny-roberta"),
        lambda b: PTuning(b, "[P0][P1] {text} [P2] It was {mask}.", V, PTuningConfig(max_length=48)),
    ),
    "p-tuning-mlp": (
        ("tiny-gpt2", "tiny-bert"),
        lambda b: PTuning(
            b, "[P0] {text} [P1] It was {mask}.", V, PTuningConfig(encoder="MLP", max_length=48)
        ),
    ),
    "p-tuning-free": (
        ("tiny-llama",),
        lambda b: PTuning(
            b, "[P0] {text} [P1] It was {mask}.", V, PTuningConfig(encoder="NONE", max_length=48)
        ),
    ),
    "prefix-tuning": (
        ("tiny-llama", "tiny-gpt2", "tiny-roberta"),
        lambda b: PrefixTuning(b, T, V, PrefixTuningConfig(3, init="random", max_length=48)),
    ),
    "prefix-tuning-words": (
        ("tiny-llama",),
        lambda b: PrefixTuning(b, T, V, PrefixTuningConfig(3, init_text="the movie was", max_length=48)),
    ),
    "p-tuning-v2": (
        ("tiny-bert", "tiny-roberta"),
        lambda b: PTuningV2(b, LABELS, PTuningV2Config(4, max_length=48)),
    ),
    "p-tuning-v2-mlp": (
        ("tiny-bert",),
        lambda b: PTuningV2(
            b, LABELS, PTuningV2Config(2, layers=1, reparameterize=True, reparam_hidden=8, max_length=48)
        ),
    ),
    "lora": (
        ("tiny-llama", "tiny-bert"),
        lambda b: LoRACloze(
            b,
            T,
            V,
            LoRAConfig(
                r=2,
                target_modules=("query", "value") if b.kind == "masked-lm" else ("q_proj", "v_proj"),
                max_length=48,
            ),
        ),
    ),
    "head": (("tiny-bert", "tiny-llama"), lambda b: HeadClassifier(b, LABELS, HeadConfig(max_length=48))),
    "head-frozen": (
        ("tiny-roberta",),
        lambda b: HeadClassifier(b, LABELS, HeadConfig(train_backbone=False, max_length=48)),
    ),
}
CASES = [(m, b) for m, (families, _) in METHODS.items() for b in families]

# methods that train nothing (zero-shot, or found by search): the same contract but for training
DEMOS = Dataset.from_dict({"text": ["a great film", "an awful movie"], "label": [1, 0]})
UNTRAINED = {
    "cloze": (
        ("tiny-llama", "tiny-bert"),
        lambda b: ClozeClassifier(b, T, V, PromptLearningConfig(max_length=48)),
    ),
    "multi-token": (
        ("tiny-gpt2", "tiny-roberta"),
        lambda b: MultiTokenCloze(
            b,
            T,
            Verbalizer({"negative": "not good", "positive": "really good"}, multi_token="sum"),
            PromptLearningConfig(max_length=48),
        ),
    ),
    "autoprompt": (
        ("tiny-llama", "tiny-bert"),
        lambda b: AutoPrompt(
            b, "{text} [P0][P1] {mask}.", V, AutoPromptConfig(num_iterations=1, max_length=48)
        ),
    ),
    "in-context": (
        ("tiny-llama", "tiny-bert"),
        lambda b: in_context_classifier(b, T, V, DEMOS, max_length=96),
    ),
}
UNTRAINED_CASES = [(m, b) for m, (families, _) in UNTRAINED.items() for b in families]
OTHER = {
    "tiny-llama": "tiny-gpt2",
    "tiny-gpt2": "tiny-llama",
    "tiny-bert": "tiny-roberta",
    "tiny-roberta": "tiny-bert",
}


def build(method: str, backbone: str) -> PromptMethod:
    return METHODS[method][1](load_backbone(backbone, device="cpu"))


def saves_and_loads(m: PromptMethod, backbone: str, logits: torch.Tensor, folder) -> None:
    """Saved and loaded onto a fresh copy of its backbone, ``m`` gives the same logits; elsewhere it is refused."""
    save_prompt(m, folder)
    again = load_prompt(folder, load_backbone(backbone, device="cpu"))
    assert type(again) is type(m) and again.labels == m.labels
    with torch.no_grad():
        torch.testing.assert_close(again(TEXTS), logits, atol=1e-5, rtol=1e-5)
    with pytest.raises(CheckpointError, match="not on"):
        load_prompt(folder, load_backbone(OTHER[backbone], device="cpu"))


@pytest.mark.parametrize("method,backbone", CASES)
def test_contract(method, backbone, sentiment_toy, tmp_path):
    m = build(method, backbone)
    assert isinstance(m, PromptMethod) and m.labels == LABELS
    assert m.device.type == "cpu" and m.dtype == torch.float32
    trainable = [p for p in m.parameters() if p.requires_grad]
    assert trainable and m.trainable_parameters() == sum(p.numel() for p in trainable)
    assert all(p.dtype == torch.float32 for p in trainable)
    with torch.no_grad():
        assert m.eval()(TEXTS).shape == (3, 2)
    before = [p.detach().clone() for p in trainable]
    hist = fit(m, sentiment_toy, steps=2, lr=1e-2, batch_size=4, progress=False)
    assert len(hist.loss) == 2 and hist.precision == auto_precision("cpu")
    assert any(not torch.equal(a, p) for a, p in zip(before, trainable)), "training changed nothing"
    with torch.no_grad():
        logits = m.eval()(TEXTS)
    saves_and_loads(m, backbone, logits, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "prompt.safetensors"
    weights.write_bytes(weights.read_bytes()[:20])  # truncated
    with pytest.raises(CheckpointError, match="prompt.safetensors.*damaged or truncated"):
        load_prompt(tmp_path / "ckpt", load_backbone(backbone, device="cpu"))


@pytest.mark.parametrize("method,backbone", UNTRAINED_CASES)
def test_contract_of_the_methods_that_train_nothing(method, backbone, tmp_path):
    m = UNTRAINED[method][1](load_backbone(backbone, device="cpu"))
    assert isinstance(m, PromptMethod) and m.labels == LABELS
    assert m.device.type == "cpu" and m.dtype == torch.float32
    assert m.trainable_parameters() == 0
    with torch.no_grad():
        logits = m.eval()(TEXTS)
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
    saves_and_loads(m, backbone, logits, tmp_path / "ckpt")


@pytest.mark.parametrize("method", ["prompt-tuning", "prefix-tuning"])
def test_generation_methods_save_and_load(method, tmp_path):
    b = load_backbone("tiny-llama", device="cpu")
    m = (
        PromptTuning(b, config=PromptTuningConfig(3, init_text="news"))
        if method == "prompt-tuning"
        else PrefixTuning(b, config=PrefixTuningConfig(3, init="random", reparam_hidden=8))
    )
    assert m.labels == []
    out = m.generate(["the film was"], max_new_tokens=4)
    save_prompt(m, tmp_path / "ckpt")
    again = load_prompt(tmp_path / "ckpt", load_backbone("tiny-llama", device="cpu"))
    assert again.generate(["the film was"], max_new_tokens=4) == out
    with torch.no_grad():
        torch.testing.assert_close(
            again.lm_loss(["the film"], [" was good"]), m.lm_loss(["the film"], [" was good"])
        )


def test_a_retrained_backbone_is_named_by_its_original_embeddings(sentiment_toy, tmp_path):
    """PET changes every weight; its checkpoint still loads onto a fresh copy of the backbone it started from."""
    m = PET(load_backbone("tiny-llama"), T, V, PETConfig(max_length=48))
    fit(m, sentiment_toy, steps=2, lr=1e-1, batch_size=4, progress=False)
    save_prompt(m, tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / "prompt_config.json").read_text())
    assert (
        len(meta["backbone"]["embeddings_sha256"]) == 64
        and meta["backbone"]["architecture"] == "LlamaForCausalLM"
    )
    load_prompt(tmp_path / "ckpt", load_backbone("tiny-llama"))


def test_same_architecture_other_weights_is_refused(tmp_path):
    m = PromptTuning(load_backbone("tiny-llama"), T, V, PromptTuningConfig(3, init="RANDOM", max_length=48))
    save_prompt(m, tmp_path / "ckpt")
    other = load_backbone("tiny-llama")
    with torch.no_grad():
        other.model.get_input_embeddings().weight.mul_(1.5)
    with pytest.raises(CheckpointError, match="embeddings_sha256"):
        load_prompt(tmp_path / "ckpt", other)


@pytest.mark.parametrize(
    "method,frozen",
    [
        ("prompt-tuning", True),
        ("prefix-tuning", True),
        ("head-frozen", True),
        ("pet-frozen", True),
        ("p-tuning-v2", True),
        ("head", False),
        ("pet-all", False),
    ],
)
def test_frozen_backbone_dropout_policy(method, frozen):
    families, make = METHODS[method]
    m = make(load_backbone(families[-1]))
    m.train()
    dropouts = [mod.training for mod in m.model.modules() if isinstance(mod, torch.nn.Dropout)]
    if not frozen:  # a backbone that trains uses its dropout
        assert all(dropouts)
    elif m.config.backbone_dropout:  # P-tuning v2's code keeps the frozen encoder's dropout on
        assert isinstance(m, PTuningV2) and all(dropouts)
    else:
        assert not any(dropouts)


def test_every_trainable_tensor_is_fp32_on_a_bf16_backbone(sentiment_toy):
    """A bf16 backbone, fp32 prompts and heads: forward and backward run outside and inside autocast."""
    for method, backbone in CASES:
        b = load_backbone(backbone, dtype=torch.bfloat16, device="cpu")
        m = METHODS[method][1](b)
        assert all(
            p.dtype == torch.float32
            for n, p in m.named_parameters()
            if p.requires_grad and not n.startswith(("model.", "encoder."))
        ), method
        m.train()
        for precision in ("no", "bf16"):
            loss = fit(
                copy.deepcopy(m),
                sentiment_toy,
                steps=1,
                lr=1e-3,
                batch_size=4,
                progress=False,
                mixed_precision=precision,
            ).loss[0]
            assert torch.isfinite(torch.tensor(loss)), (method, backbone, precision)


def test_the_package_exports_every_method():
    import prompt_learning

    for cls in (ClozeClassifier, PET, PromptTuning, PTuning, PrefixTuning, PTuningV2, HeadClassifier):
        assert getattr(prompt_learning, cls.__name__) is cls and issubclass(cls, PromptMethod)


@pytest.mark.parametrize("backbone", ["tiny-llama", "tiny-gpt2", "tiny-bert", "tiny-roberta"])
def test_zero_shot_cloze_keeps_the_contract_and_trains_nothing(backbone, sentiment_toy):
    m = ClozeClassifier(load_backbone(backbone), T, V, PromptLearningConfig(max_length=48))
    assert isinstance(m, PromptMethod) and m.labels == LABELS and m.trainable_parameters() == 0
    assert m(TEXTS).shape == (3, 2)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(m, sentiment_toy, steps=1, lr=1e-3, batch_size=2, progress=False)


def test_in_context_classifier_keeps_the_contract(sentiment_toy):
    m = in_context_classifier(load_backbone("tiny-llama"), T, V, sentiment_toy.select([0, 1]))
    assert isinstance(m, ClozeClassifier) and m.labels == LABELS and m(TEXTS).shape == (3, 2)


def test_config_types_are_checked():
    with pytest.raises(ValueError, match="takes a PETConfig"):
        PET(load_backbone("tiny-llama"), T, V, PromptTuningConfig(3, max_length=48))
    assert isinstance(load_backbone("tiny-llama"), Backbone)


def _relabelled(data, names):
    from datasets import ClassLabel

    return data.cast_column("label", ClassLabel(names=names))


def _corrupt_checkpoint(tmp_path):
    m = PromptTuning(load_backbone("tiny-llama"), T, V, PromptTuningConfig(3, init="RANDOM", max_length=48))
    save_prompt(m, tmp_path / "ckpt")
    (tmp_path / "ckpt" / "prompt.safetensors").write_bytes(b"\x01\x02")
    load_prompt(tmp_path / "ckpt", load_backbone("tiny-llama"))


def _cloze():
    return ClozeClassifier(load_backbone("tiny-llama"), T, V, PromptLearningConfig(max_length=48))


# every row: what a user does → the error type and the words that name the problem and the fix
BAD_INPUT = {
    "fit on an empty dataset": (
        lambda d, tmp: fit(_cloze(), d.select([]), steps=2, lr=1e-3, batch_size=2),
        ValueError,
        "dataset is empty",
    ),
    "label words in another class order than the data": (
        lambda d, tmp: fit(
            _cloze(), _relabelled(d, ["positive", "negative"]), steps=1, lr=1e-3, batch_size=2
        ),
        ValueError,
        "do not match the dataset's labels.*label order",
    ),
    "a label outside the verbalizer's classes": (
        lambda d, tmp: fit(
            _cloze(), Dataset.from_dict({"text": ["a", "b"], "label": [0, 5]}), steps=1, lr=1e-3, batch_size=2
        ),
        ValueError,
        r"labels \[5\] are outside the method's 2 classes",
    ),
    "None among the texts": (
        lambda d, tmp: _cloze()(["a fine film", None]),
        ValueError,
        r"text\[1\] is None.*string",
    ),
    "an empty batch": (lambda d, tmp: _cloze()([]), ValueError, "batch is empty"),
    "one string instead of a list": (lambda d, tmp: _cloze()("a fine film"), ValueError, "list of texts"),
    "a corrupted prompt.safetensors": (
        lambda d, tmp: _corrupt_checkpoint(tmp),
        CheckpointError,
        "prompt.safetensors cannot be read.*save the method again",
    ),
    "10,000 prefix tokens on a 128-position model": (
        lambda d, tmp: PrefixTuning(
            load_backbone("tiny-llama"), T, V, PrefixTuningConfig(10_000, init="random")
        ),
        ValueError,
        "10000 prefix tokens alone need more than the 128 positions",
    ),
    "10,000 prompt tokens on a 128-position model": (
        lambda d, tmp: PromptTuning(
            load_backbone("tiny-llama"), T, V, PromptTuningConfig(10_000, init="RANDOM")
        ),
        ValueError,
        "10000 virtual tokens alone",
    ),
    "a cloze max_length beyond the positions": (
        lambda d, tmp: ClozeClassifier(
            load_backbone("tiny-bert"), T, V, PromptLearningConfig(max_length=513)
        ),
        ValueError,
        "max_length 513 need 513 positions.*at most 128",
    ),
    "a PET max_length beyond the positions": (
        lambda d, tmp: PET(load_backbone("tiny-roberta"), T, V, PETConfig(max_length=600)),
        ValueError,
        "lower max_length to at most 128",
    ),
    "a head max_length beyond the positions": (
        lambda d, tmp: HeadClassifier(load_backbone("tiny-bert"), LABELS, HeadConfig(max_length=1000)),
        ValueError,
        "lower max_length",
    ),
    "P-tuning v2 prompts in no layer": (
        lambda d, tmp: PTuningV2Config(16, layers=0),
        ValueError,
        "layers=0 puts the prompts in no layer",
    ),
    "P-tuning v2 without prompts": (lambda d, tmp: PTuningV2Config(0), ValueError, "HeadClassifier"),
    "warmup of the whole run": (
        lambda d, tmp: fit(_cloze(), d, steps=2, lr=1e-3, batch_size=2, warmup=1.0),
        ValueError,
        r"warmup .* \[0, 1\)",
    ),
    "a negative max_length": (lambda d, tmp: PromptLearningConfig(max_length=-1), ValueError, "non-negative"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_gets_a_clear_error_fast(case, sentiment_toy, tmp_path):
    import time

    action, error, words = BAD_INPUT[case]
    start = time.perf_counter()
    with pytest.raises(error, match=words):
        action(sentiment_toy, tmp_path)
    assert time.perf_counter() - start < 5.0


def test_the_schedule_rises_to_lr_and_decays_to_zero_never_above():
    from prompt_learning.training import linear_schedule

    factors = [linear_schedule(10, 0.5)(s) for s in range(10)]
    assert factors == [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2]
    assert max(factors) == 1.0 and linear_schedule(10, 0.5)(10) == 0.0
    assert [linear_schedule(4, 0.0)(s) for s in range(4)] == [1.0] * 4


def test_fit_follows_the_schedule(sentiment_toy):
    m = _cloze()
    seen = []
    orig = torch.optim.AdamW.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    m = PromptTuning(load_backbone("tiny-llama"), T, V, PromptTuningConfig(2, init="RANDOM", max_length=48))
    torch.optim.AdamW.step = spy
    try:
        fit(m, sentiment_toy, steps=4, lr=0.1, batch_size=2, warmup=0.5, progress=False)
    finally:
        torch.optim.AdamW.step = orig
    assert seen == pytest.approx([0.05, 0.1, 0.1, 0.05])
