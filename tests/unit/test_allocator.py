"""keep_freed_memory: glibc told to reuse freed blocks, once, where glibc is; nothing elsewhere."""

import ctypes
import sys

import pytest

from prompt_learning import allocator, notebook
from prompt_learning.allocator import (
    CPU_MALLOC_ENV,
    M_MMAP_THRESHOLD,
    M_TRIM_THRESHOLD,
    MMAP_THRESHOLD_MAX,
    TRIM_NEVER,
    keep_freed_memory,
)
from prompt_learning.backbones import load_backbone


class FakeLibc:
    """Records mallopt's calls; answers ``ok`` (glibc's 1 for success, 0 for a refusal)."""

    def __init__(self, ok: int = 1):
        self.calls, self.ok = [], ok

        def mallopt(param, value):
            self.calls.append((param, value))
            return self.ok

        self.mallopt = mallopt


@pytest.fixture(autouse=True)
def fresh():
    keep_freed_memory.cache_clear()
    yield
    keep_freed_memory.cache_clear()


def test_the_rule_sets_the_largest_mmap_threshold_and_never_trims(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: libc)
    monkeypatch.delenv(CPU_MALLOC_ENV, raising=False)
    assert keep_freed_memory() is True
    assert libc.calls == [(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX), (M_TRIM_THRESHOLD, TRIM_NEVER)]
    assert (M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == (-1, -3, 32 * 2**20)  # <malloc.h>
    keep_freed_memory()
    assert len(libc.calls) == 2  # once per process


def test_a_refusal_is_reported(monkeypatch):
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: FakeLibc(ok=0))
    assert keep_freed_memory() is False


@pytest.mark.parametrize("value", ["0", "false", "No"])
def test_the_environment_can_leave_malloc_alone(monkeypatch, value):
    libc = FakeLibc()
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: libc)
    monkeypatch.setenv(CPU_MALLOC_ENV, value)
    assert keep_freed_memory() is False and libc.calls == []


def test_without_mallopt_it_does_nothing(monkeypatch):
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: object())  # a C library without mallopt
    assert keep_freed_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc is Linux's C library")
def test_the_real_glibc_takes_the_rule(monkeypatch):
    monkeypatch.delenv(CPU_MALLOC_ENV, raising=False)
    if not hasattr(ctypes.CDLL(None), "gnu_get_libc_version"):
        pytest.skip("not glibc")
    assert keep_freed_memory() is True


def test_a_chapters_start_applies_it_and_loading_a_backbone_does_not(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(notebook, "keep_freed_memory", lambda: seen.append("kept"))
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: seen.append("by the backbone"))
    load_backbone("tiny-llama", device="cpu")
    assert seen == []
    notebook.start()
    assert seen == ["kept"]
