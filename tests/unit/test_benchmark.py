"""The benchmark measures what it says: every method ours and PEFT's, timed and compared."""

import math

import torch

from prompt_learning.benchmark import METHODS, compare, rss_growth


def test_compare_times_every_method_against_peft_on_a_tiny_llama():
    result = compare(repeats=1, tokens=16, virtual=2, memory=False, model="tiny-llama")
    assert [r["method"] for r in result["rows"]] == list(METHODS)
    for r in result["rows"]:
        assert r["ours_s"] > 0 and r["peft_s"] > 0
        assert math.isclose(r["time_ratio"], r["ours_s"] / r["peft_s"])
        assert math.isclose(r["step_over_forward"], r["ours_s"] / r["ours_forward_s"])
        assert math.isnan(r["memory_ratio"])  # memory=False measures no memory


def test_rss_growth_sees_an_allocation_and_not_its_absence():
    grown = rss_growth(lambda: torch.ones(64 * 2**20 // 4).add_(1).sum())  # 64 MiB
    assert 48 < grown < 256
    assert rss_growth(lambda: sum(range(1000))) < 16
