"""Every method on a CUDA GPU gives the CPU's logits, and trains there under mixed precision.

Skipped without a GPU (CI has none); run on a GPU machine with ``pytest tests/gpu``.
"""

import copy

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from prompt_learning import (
    PET,
    ClozeClassifier,
    HeadClassifier,
    HeadConfig,
    PETConfig,
    PromptLearningConfig,
    Verbalizer,
    fit,
    load_backbone,
)
from prompt_learning.calibration import CalibratedClassifier
from prompt_learning.in_context import in_context_classifier
from prompt_learning.p_tuning import PTuning, PTuningConfig
from prompt_learning.p_tuning_v2 import PTuningV2, PTuningV2Config
from prompt_learning.prefix_tuning import PrefixTuning, PrefixTuningConfig
from prompt_learning.soft_prompts import PromptTuning, PromptTuningConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

V = Verbalizer({"negative": "negative", "positive": "positive"})
T = "Review: {text} Sentiment: {mask}"
TEXTS = ["a great film", "an awful movie , i hate it", "good fun", "boring and dull plot"]


def data() -> Dataset:
    f = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    return Dataset.from_dict({"text": TEXTS * 2, "label": [1, 0, 1, 0] * 2}, features=f)


def cpu(name):
    return load_backbone(name, device="cpu")  # the reference; copies go to the GPU


METHODS = {
    "cloze-causal": lambda: ClozeClassifier(cpu("tiny-llama"), T, V, PromptLearningConfig(max_length=64)),
    "cloze-masked": lambda: ClozeClassifier(cpu("tiny-roberta"), T, V, PromptLearningConfig(max_length=64)),
    "in-context": lambda: in_context_classifier(cpu("tiny-llama"), T, V, data().select([0, 1])),
    "pet-all": lambda: PET(cpu("tiny-roberta"), T, V, PETConfig(max_length=64)),
    "pet-frozen": lambda: PET(cpu("tiny-llama"), T, V, PETConfig(tune="frozen", max_length=64)),
    "prompt-tuning": lambda: PromptTuning(
        cpu("tiny-llama"),
        T,
        V,
        PromptTuningConfig(num_virtual_tokens=4, init_text="the movie was", max_length=64),
    ),
    "p-tuning-lstm": lambda: PTuning(cpu("tiny-llama"), "[P0][P1] " + T, V, PTuningConfig(max_length=64)),
    "prefix-tuning": lambda: PrefixTuning(
        cpu("tiny-llama"), T, V, PrefixTuningConfig(num_virtual_tokens=4, init="random", max_length=64)
    ),
    "p-tuning-v2": lambda: PTuningV2(cpu("tiny-bert"), 2, PTuningV2Config(4, max_length=64)),
    "head": lambda: HeadClassifier(cpu("tiny-bert"), 2, HeadConfig(max_length=64)),
    "head-frozen-causal": lambda: HeadClassifier(
        cpu("tiny-llama"), 2, HeadConfig(train_backbone=False, max_length=64)
    ),
    "calibrated": lambda: CalibratedClassifier(
        ClozeClassifier(cpu("tiny-llama"), T, V, PromptLearningConfig(max_length=64))
    ),
}


@pytest.mark.parametrize("name", METHODS)
def test_gpu_logits_equal_cpu_logits(name):
    cpu = METHODS[name]().eval()
    gpu = copy.deepcopy(cpu).to("cuda").eval()
    with torch.no_grad():
        torch.testing.assert_close(gpu(TEXTS).cpu(), cpu(TEXTS), atol=1e-4, rtol=1e-4)


TRAINED = [
    "pet-all",
    "pet-frozen",
    "prompt-tuning",
    "p-tuning-lstm",
    "prefix-tuning",
    "p-tuning-v2",
    "head",
    "head-frozen-causal",
]


@pytest.mark.parametrize("precision", ["auto", "fp16", "no"])
@pytest.mark.parametrize("name", TRAINED)
def test_training_on_gpu_in_each_precision(name, precision):
    if precision == "auto" and torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("auto is fp16 on this GPU")
    method = METHODS[name]().to("cuda")
    hist = fit(
        method,
        data(),
        steps=20,
        lr=1e-3 if name in ("pet-all", "head") else 3e-2,
        batch_size=4,
        mixed_precision=precision,
        progress=False,
    )
    trainable = [p for p in method.parameters() if p.requires_grad]
    assert all(p.device.type == "cuda" and p.dtype == torch.float32 for p in trainable)
    assert sum(hist.loss[-3:]) / 3 < sum(hist.loss[:3]) / 3, hist.loss


def test_two_fits_with_different_precisions_in_one_process():
    a, b = METHODS["prompt-tuning"]().to("cuda"), METHODS["prompt-tuning"]().to("cuda")
    first = fit(a, data(), steps=2, lr=1e-2, batch_size=4, mixed_precision="auto", progress=False)
    second = fit(b, data(), steps=2, lr=1e-2, batch_size=4, mixed_precision="no", progress=False)
    assert first.precision in ("bf16", "fp16") and second.precision == "no"


def test_a_bf16_backbone_with_fp32_prompts_and_heads():
    for name in ("prompt-tuning", "prefix-tuning", "p-tuning-v2", "head-frozen-causal"):
        method = METHODS[name]()
        method.backbone.model.to("cuda", torch.bfloat16)
        method.to("cuda")
        for p in method.parameters():
            if p.requires_grad:
                p.data = p.data.float()
        with torch.no_grad():
            assert method(TEXTS).isfinite().all(), name


def test_the_benchmark_runs_on_the_gpu():
    from prompt_learning.benchmark import compare

    out = compare(repeats=1, tokens=16, virtual=4, memory=True, model="tiny-llama")
    assert out["device"] == torch.cuda.get_device_name(0) and len(out["rows"]) == 3
    assert all(r["ours_s"] > 0 and r["peft_s"] > 0 for r in out["rows"])


def test_prefix_generation_on_gpu_equals_cpu():
    cpu = PrefixTuning(
        load_backbone("tiny-gpt2", device="cpu"),
        config=PrefixTuningConfig(num_virtual_tokens=3, init="random"),
    )
    gpu = copy.deepcopy(cpu).to("cuda")
    assert gpu.generate(["the film was"], max_new_tokens=6) == cpu.generate(
        ["the film was"], max_new_tokens=6
    )
