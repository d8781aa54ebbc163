"""Every method on a CUDA GPU gives the CPU's logits, and trains there under mixed precision.

Skipped without a GPU (CI has none); run on a GPU machine with ``pytest tests/gpu``.
"""

import copy

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from prompt_learning import ClozeClassifier, Verbalizer, fit, load_backbone
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


METHODS = {
    "cloze-causal": lambda: ClozeClassifier(load_backbone("tiny-llama"), T, V),
    "cloze-masked": lambda: ClozeClassifier(load_backbone("tiny-roberta"), T, V),
    "in-context": lambda: in_context_classifier(load_backbone("tiny-llama"), T, V, data().select([0, 1])),
    "prompt-tuning": lambda: PromptTuning(load_backbone("tiny-llama"), T, V,
                                          PromptTuningConfig(num_virtual_tokens=4, init_text="the movie was"),
                                          max_length=64),
    "p-tuning-lstm": lambda: PTuning(load_backbone("tiny-llama"), "[P0][P1] " + T, V, PTuningConfig(), max_length=64),
    "prefix-tuning": lambda: PrefixTuning(load_backbone("tiny-llama"),
                                          PrefixTuningConfig(num_virtual_tokens=4, init="random", max_length=64),
                                          template=T, verbalizer=V),
    "p-tuning-v2": lambda: PTuningV2(load_backbone("tiny-bert"), 2, PTuningV2Config(4, max_length=64)),
}


@pytest.mark.parametrize("name", METHODS)
def test_gpu_logits_equal_cpu_logits(name):
    cpu = METHODS[name]().eval()
    gpu = copy.deepcopy(cpu).to("cuda").eval()
    with torch.no_grad():
        torch.testing.assert_close(gpu(TEXTS).cpu(), cpu(TEXTS), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["prompt-tuning", "prefix-tuning", "p-tuning-v2", "cloze-causal"])
def test_training_on_gpu_with_bf16(name):
    method = METHODS[name]().to("cuda")
    hist = fit(method, data(), steps=20, lr=3e-2 if name != "cloze-causal" else 1e-3, batch_size=4,
               mixed_precision="bf16", progress=False)
    assert next(p for p in method.parameters() if p.requires_grad).device.type == "cuda"
    assert sum(hist.loss[-3:]) / 3 < sum(hist.loss[:3]) / 3


def test_prefix_generation_on_gpu_equals_cpu():
    cpu = PrefixTuning(load_backbone("tiny-gpt2"), PrefixTuningConfig(num_virtual_tokens=3, init="random"))
    gpu = copy.deepcopy(cpu).to("cuda")
    assert gpu.generate(["the film was"], max_new_tokens=6) == cpu.generate(["the film was"], max_new_tokens=6)
