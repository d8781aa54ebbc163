"""A run is a function of its seeds: two fresh processes train to the same numbers.

Torch seeds its global generator at random in every new process, so any initial value drawn from
it (a head, a prompt table) would differ from run to run; the methods draw from their own seeds.
And some CPU backward kernels sum in thread order; ``fit`` turns on deterministic kernels.
"""

import ast
import subprocess
import sys

import pytest

SCRIPT = """
import os

import torch
from datasets import ClassLabel, Dataset, Features, Value
from prompt_learning import fit, load_backbone
from prompt_learning.heads import HeadClassifier, HeadConfig
from prompt_learning.p_tuning_v2 import PTuningV2, PTuningV2Config
from prompt_learning.prefix_tuning import PrefixTuning, PrefixTuningConfig
from prompt_learning.verbalizers import Verbalizer

features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
data = Dataset.from_dict({"text": ["a good film", "a bad film", "fine fun", "dull plot"] * 2,
                          "label": [1, 0, 1, 0] * 2}, features=features)
bert, bert2, llama = load_backbone("tiny-bert"), load_backbone("tiny-bert"), load_backbone("tiny-llama")
torch.manual_seed(int.from_bytes(os.urandom(4), "little"))  # as unseeded as a fresh process
methods = [
    PTuningV2(bert, 2, PTuningV2Config(2, train_backbone=True, max_length=16)),
    HeadClassifier(bert2, 2, HeadConfig(max_length=16)),
    PrefixTuning(llama, "{text} It was {mask}", Verbalizer({"negative": "bad", "positive": "good"}),
                 PrefixTuningConfig(2, init="random", max_length=16)),
]
for m in methods:
    print(fit(m, data, steps=3, lr=1e-2, batch_size=4, seed=0, progress=False).loss)
"""


def run() -> str:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    return out.stdout


@pytest.mark.slow  # starts another Python
def test_two_processes_train_to_the_same_losses():
    first, second = (run().splitlines() for _ in range(2))
    assert len(first) == len(second) == 3
    for a, b in zip(first, second):
        assert len(ast.literal_eval(a)) == 3
        assert a == b  # bit for bit: the same start, and deterministic kernels while training
