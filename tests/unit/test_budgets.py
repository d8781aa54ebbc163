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
