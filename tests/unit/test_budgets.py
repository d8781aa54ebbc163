"""Each chapter's runs at the GPU profiles' sizes: the t4 profile fits a T4, the gpu profile needs more."""

import pytest

from prompt_learning.budgets import chapter_runs, chapter_table
from prompt_learning.memory import GB
from prompt_learning.profiles import PROFILES


def test_t4_profile_fits_a_t4():
    """Every chapter's largest run (by memory) is under 15 GB, and the whole chapter under 20 minutes."""
    rows = chapter_table(PROFILES["t4"])
    assert [r["chapter"] for r in rows] == list(range(1, 10))
    for r in rows:
        assert r["peak_gb"] <= 15, r
        assert r["largest_min"] <= 20 and r["chapter_min"] <= 20, r
    assert all(run.peak_bytes("fp16") <= 15 * GB for run in chapter_runs(PROFILES["t4"]))


def test_gpu_profile_needs_more_than_a_t4():
    assert max(r["peak_gb"] for r in chapter_table(PROFILES["gpu"])) > 16
    with pytest.raises(ValueError, match="'gpu' rows"):
        chapter_table(PROFILES["cpu"], "cpu", "no")


def test_parameter_counts_come_from_the_modules_and_match_the_closed_forms():
    """Counted on the meta device from the library's (and PEFT's) own modules; checked here against
    the formulas a reader would write down, for SmolLM2-135M (h 576, 30 layers, 3 KV heads of 64)."""
    from prompt_learning.budgets import lora_params, lstm_encoder_params, prefix_mlp_params
    from prompt_learning.memory import ARCHITECTURES

    a = ARCHITECTURES["smollm2-135m"]
    h, d, w = a.hidden, a.hidden // 2, 2 * a.layers * a.kv_dim
    lstm = 2 * 2 * (4 * d * (h + d) + 8 * d)  # 2 bidirectional layers of h/2; the 2nd reads 2d = h
    assert lstm_encoder_params(h, 16) == 16 * h + lstm + (2 * d * 2 * d + 2 * d) + (2 * d * h + h)
    assert prefix_mlp_params(a, 10) == 10 * h + h * 512 + 512 + 512 * w + w
    assert lora_params(a, 8) == a.layers * 8 * ((h + h) + (h + a.kv_dim))
