"""What a bf16 step on this CPU costs, and what the library's two CPU rules buy, in one run.

SmolLM2-135M, frozen, a prompt-tuning step (20 virtual tokens, batch 8 × 64 tokens, two label
words at the last position), bf16 autocast. Four set-ups, alternating repeats, medians:

* ``before``: transformers' ``sdpa`` attention, every frozen weight cast by autocast at each matmul;
* ``cast once``: the frozen weights cast once per call (``precision.frozen_weights_cast``);
* ``formula``: the attention written out when gradients flow (``attention.attend``);
* ``both``: the library's default, as ``fit`` runs it.

Each is timed as a no-grad forward and as a training step (forward, backward, AdamW). Checks, in
the same run: the cast-once forward equals the plain one bit for bit, and how far the prompt's
gradient is from fp32's in each set-up (bf16 rounding: the formula must be no farther than sdpa).
Writes ``benchmarks/results/cpu_step.json``.

    .venv/bin/python benchmarks/cpu_step.py --repeats 7
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from prompt_learning import PromptTuning, PromptTuningConfig, load_backbone
from prompt_learning.benchmark import TEMPLATE, WORDS, batch_texts, forward_fn, step_fn
from prompt_learning.kv_prefix import ATTENTION_NAME
from prompt_learning.precision import autocast, cpu_has_fast_bf16, frozen_weights_cast
from prompt_learning.allocator import keep_freed_memory
from prompt_learning.precision import cpu_description

SETUPS = {
    "before": ("sdpa", False),
    "cast once": ("sdpa", True),
    "formula": (ATTENTION_NAME, False),
    "both": (ATTENTION_NAME, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cpu_step.json")
    args = parser.parse_args()
    if not cpu_has_fast_bf16():
        print("this CPU has no AMX-BF16 / AVX512-BF16: the book runs it in fp32 and neither rule applies")
    keep_freed_memory()  # the process-wide CPU rule, as every chapter's start() applies it
    backbone = load_backbone("smollm2-135m", device="cpu")
    torch.manual_seed(0)
    method = PromptTuning(
        backbone, TEMPLATE, WORDS, PromptTuningConfig(num_virtual_tokens=20, init="RANDOM", max_length=96)
    )
    prompt = next(p for p in method.parameters() if p.requires_grad)
    texts, labels = batch_texts(backbone.tokenizer), torch.tensor([0, 1] * 4)
    step = step_fn("ours", method, backbone, texts, "bf16")  # the benchmark's step and forward
    forward = forward_fn(method, texts, "bf16")

    @contextlib.contextmanager
    def setup(name: str, precision: str = "bf16"):
        attention, cast = SETUPS[name]
        backbone.model.set_attn_implementation(attention)
        with frozen_weights_cast(method, "cpu", precision) if cast else contextlib.nullcontext():
            yield

    def gradient() -> torch.Tensor:
        prompt.grad = None
        F.cross_entropy(method(texts).float(), labels).backward()
        return prompt.grad.clone()

    with setup("before", "no"):
        fp32 = gradient()  # the reference both bf16 attentions are measured against
    logits, off = {}, {}
    saved = prompt.detach().clone()
    for name in SETUPS:
        with setup(name), autocast("cpu", "bf16"):
            with torch.no_grad():
                logits[name] = method(texts).float()
            off[name] = ((gradient() - fp32).norm() / fp32.norm()).item()
    times = {f"{name} {kind}": [] for name in SETUPS for kind in ("forward", "step")}
    for round in range(args.repeats + 1):  # alternate, so drifts in machine load hit all alike
        for name in SETUPS:
            with setup(name):
                for kind, fn in (("forward", forward), ("step", step)):
                    start = time.perf_counter()
                    fn()
                    if round:  # the first round warms up
                        times[f"{name} {kind}"].append(time.perf_counter() - start)
    with torch.no_grad():
        prompt.copy_(saved)
    s = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "device": f"cpu ({torch.get_num_threads()} threads)",
        "machine": cpu_description(),
        "repeats": args.repeats,
        "cpu_has_fast_bf16": cpu_has_fast_bf16(),
        "torch": torch.__version__,
        "seconds": s,
        "forward_cast_once_over_before": s["cast once forward"] / s["before forward"],
        "step_cast_once_over_before": s["cast once step"] / s["before step"],
        "step_formula_over_before": s["formula step"] / s["before step"],
        "step_both_over_before": s["both step"] / s["before step"],
        "forward_both_over_before": s["both forward"] / s["before forward"],
        "cast_once_logits_identical": bool(torch.equal(logits["cast once"], logits["before"])),
        # |g_bf16 − g_fp32| / |g_fp32| of the prompt's gradient: bf16 rounding, per set-up
        "gradient_off_fp32": off,
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
