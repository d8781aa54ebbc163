"""Freed memory kept for reuse on a CPU: the third CPU rule, next to :mod:`~prompt_learning.precision`'s two.

On a CPU, PyTorch takes every activation from the C library's ``malloc``. glibc hands a large block
straight to the kernel (``mmap``, above a threshold of 128 KiB that it raises only slowly) and gives
freed memory at the top of its heap back (``trim``). A forward pass of SmolLM2 frees and re-asks for
the same few megabyte-sized activations at every layer, so the kernel maps fresh zeroed pages each
time: the profiler shows the MLP's ``silu(gate) * up`` taking four times as long inside the model as
the same multiplication on memory already mapped.

:func:`keep_freed_memory` tells glibc (``mallopt``, in this process, no restart) to serve blocks up to
its largest threshold (32 MiB) from the heap and never to trim it: memory freed by one batch is
reused by the next. Peak memory is unchanged; what changes is that the process keeps its high-water
mark instead of returning it between batches. ``benchmarks/cpu_allocator.py`` measures the effect on
evaluation and training steps. On a system without glibc (macOS, Windows, musl) it does nothing, and
``PROMPT_LEARNING_CPU_MALLOC=0`` leaves ``malloc`` as it is. A process asks for it once, explicitly:
:func:`~prompt_learning.notebook.start` (every chapter's first call) does, and so does each benchmark.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from .switches import switch

CPU_MALLOC_ENV = "PROMPT_LEARNING_CPU_MALLOC"  # off ("0"): leave malloc as the process found it
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's <malloc.h>
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's largest mmap threshold on 64-bit systems
TRIM_NEVER = 2**31 - 1  # a trim threshold (an int) no heap top reaches


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed blocks of up to 32 MiB instead of unmapping them; ``True`` if it did.

    Process-wide and idempotent. ``False`` where there is no glibc ``mallopt`` or
    ``PROMPT_LEARNING_CPU_MALLOC=0`` is set.
    """
    if not switch(CPU_MALLOC_ENV, default=True):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success; both must take
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) & bool(mallopt(M_TRIM_THRESHOLD, TRIM_NEVER))
