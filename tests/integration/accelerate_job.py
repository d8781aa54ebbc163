"""Train a prompt-tuning model with ``fit``; run alone or under ``accelerate launch``.

Writes ``rank<r>.pt`` into the folder given as argv[1]: the final prompt and the per-step losses.
argv[2] is the per-process batch size.
"""

import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from datasets import ClassLabel, Dataset, Features, Value

from prompt_learning import Verbalizer, fit, load_backbone
from prompt_learning.soft_prompts import PromptTuning, PromptTuningConfig

out, batch_size = Path(sys.argv[1]), int(sys.argv[2])
features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
texts = [
    "a great film",
    "an awful movie",
    "good fun",
    "boring and dull",
    "i loved it",
    "i hate this plot",
    "wonderful music",
    "a terrible story",
    "fine actors",
    "bad scene",
    "great story",
    "dull music",
]
data = Dataset.from_dict({"text": texts, "label": [1, 0] * 6}, features=features)
method = PromptTuning(
    load_backbone("tiny-llama"),
    "Review: {text} Sentiment: {mask}",
    Verbalizer({"negative": "negative", "positive": "positive"}),
    PromptTuningConfig(num_virtual_tokens=4, init_text="the movie was", max_length=64),
)
acc = Accelerator(cpu=True)
hist = fit(
    method,
    data,
    steps=6,
    lr=3e-2,
    batch_size=batch_size,
    seed=0,
    progress=False,
    accelerator=acc,
    mixed_precision="no",
)  # fp32: the two runs must agree to float rounding
torch.save(
    {"prompt": acc.unwrap_model(method).prompt.detach().cpu(), "loss": hist.loss, "world": acc.num_processes},
    out / f"rank{acc.process_index}.pt",
)
