"""The benchmark measures what it says: every method ours and PEFT's, timed and compared."""

import math
import subprocess
import sys

import pytest

from prompt_learning.backbones import load_backbone
from prompt_learning.benchmark import METHODS, compare
from prompt_learning.precision import CPU_BF16_ENV


@pytest.mark.parametrize(
    "cpu_bf16", ["1", "0"]
)  # "0": the default precision is fp32, as on a CPU without bf16
def test_compare_times_every_method_against_peft_on_a_tiny_llama(cpu_bf16, monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, cpu_bf16)
    result = compare(repeats=3, tokens=16, virtual=2, memory=False, model="tiny-llama")
    if result["precision"] == "no":  # the default is fp32: its fp32 column is the same run
        assert all(r["ours_fp32_s"] == r["ours_s"] and r["step_speedup"] == 1 for r in result["rows"])
    assert [r["method"] for r in result["rows"]] == list(METHODS)
    for r in result["rows"]:
        assert r["ours_s"] > 0 and r["peft_s"] > 0
        assert math.isclose(r["time_ratio"], r["ours_s"] / r["peft_s"])
        # the range of the per-repeat ratios (the ratio of medians need not lie inside it)
        assert 0 < r["time_ratio_min"] <= r["time_ratio_max"]
        assert math.isclose(r["step_over_forward"], r["ours_s"] / r["ours_forward_s"])
        assert math.isnan(r["memory_ratio"])  # memory=False measures no memory


def rss_growth_in_a_fresh_process(work: str) -> float:
    """``rss_growth`` of ``work`` where no freed memory is waiting to be reused, as in the benchmark."""
    code = (
        f"import torch; from prompt_learning.benchmark import rss_growth; print(rss_growth(lambda: {work}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # starts another Python
def test_rss_growth_sees_an_allocation_and_not_its_absence():
    assert 48 < rss_growth_in_a_fresh_process("torch.ones(64 * 2**20 // 4).add_(1).sum()") < 256  # 64 MiB
    assert rss_growth_in_a_fresh_process("sum(range(1000))") < 16


def test_ours_and_peft_compute_the_same_loss_on_the_step_batch():
    """The benchmark times the same computation twice: with PEFT's weights copied into ours, one step's
    loss on the benchmark's batch is the same number."""
    import torch

    from prompt_learning.benchmark import batch_texts, build, step_fn

    for name in METHODS:
        backbone = load_backbone("tiny-llama")
        ours = build("ours", name, backbone, 3, 16)
        peft = build("peft", name, load_backbone("tiny-llama"), 3, 16)
        with torch.no_grad():
            if name == "prompt_tuning":
                peft.prompt_encoder["default"].embedding.weight.copy_(ours.prompt)
            elif name == "p_tuning":
                peft.prompt_encoder["default"].load_state_dict(ours.encoder.state_dict())
            else:
                peft.prompt_encoder["default"].embedding.weight.copy_(ours.prompts.table)
        texts = batch_texts(backbone.tokenizer, batch=4, tokens=16)
        a = step_fn("ours", ours, backbone, texts)()
        b = step_fn("peft", peft, backbone, texts)()
        assert abs(a - b) < 1e-4, (name, a, b)
