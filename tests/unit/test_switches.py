"""One rule for the library's on/off environment switches (prompt_learning.switches)."""

import pytest

from prompt_learning.allocator import CPU_MALLOC_ENV, keep_freed_memory
from prompt_learning.precision import CPU_BF16_ENV, auto_precision
from prompt_learning.switches import OFF, ON, SwitchError, switch

NAME = "PROMPT_LEARNING_TEST_SWITCH"


@pytest.mark.parametrize("value", [*ON, "TRUE", " Yes ", "On"])
def test_on_values(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    assert switch(NAME, default=False) is True


@pytest.mark.parametrize("value", [*OFF, "FALSE", " no ", "Off"])
def test_off_values(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    assert switch(NAME, default=True) is False


@pytest.mark.parametrize("default", [True, False])
@pytest.mark.parametrize("value", [None, "", "  "])
def test_unset_or_empty_is_the_default(monkeypatch, value, default):
    if value is None:
        monkeypatch.delenv(NAME, raising=False)
    else:
        monkeypatch.setenv(NAME, value)
    assert switch(NAME, default) is default


def test_any_other_value_is_refused_with_the_values_it_takes(monkeypatch):
    monkeypatch.setenv(NAME, "maybe")
    with pytest.raises(
        SwitchError, match=r"PROMPT_LEARNING_TEST_SWITCH='maybe'.*1, true.*0, false.*default \(on\)"
    ):
        switch(NAME, default=True)


def test_every_switch_of_the_library_reads_the_same_words(monkeypatch):
    """bf16 on a CPU and the allocator rule take "off" alike (the first once took only "0")."""
    keep_freed_memory.cache_clear()
    monkeypatch.setenv(CPU_BF16_ENV, "off")
    monkeypatch.setenv(CPU_MALLOC_ENV, "off")
    try:
        assert auto_precision("cpu") == "no" and keep_freed_memory() is False
        monkeypatch.setenv(CPU_BF16_ENV, "fast")
        with pytest.raises(SwitchError, match=CPU_BF16_ENV):
            auto_precision("cpu")
    finally:
        keep_freed_memory.cache_clear()
