"""Helpers every chapter notebook uses: glue numbers into the prose, show the profile, show progress.

``glue`` hands a value to myst-nb so the website's text can quote it with the ``glue:text``
role and a format such as ``.1%``; where myst-nb is absent (Colab, a bare Jupyter) it only prints.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

from .allocator import keep_freed_memory
from .profiles import Profile, get_profile

T = TypeVar("T")


def glue(name: str, value, display: bool = False) -> None:
    """Record ``value`` under ``name`` for the book's prose (myst-nb), or print it.

    NumPy and torch scalars become plain Python numbers first: their reprs (``np.float64(0.5)``)
    cannot be formatted by a ``glue:text`` role with a format such as ``.1f``.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalar
        value = value.item()
    try:
        from myst_nb import glue as _glue
    except ImportError:  # pragma: no cover - outside the book build
        if display:
            print(f"{name} = {value}")
        return
    _glue(name, value, display=display)


def quiet() -> None:
    """Keep library chatter (load-progress bars, deprecation notices) off the book's pages."""
    import transformers
    from datasets.utils.logging import disable_progress_bar

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    disable_progress_bar()
    for module in ("transformers", "peft", "accelerate", "torch"):
        warnings.filterwarnings("ignore", module=module)


def start(**overrides) -> Profile:
    """The chapter's first call: quiet the libraries, choose the profile, apply the process-wide CPU
    rule (freed memory kept for reuse, :mod:`~prompt_learning.allocator`), print the profile, return it."""
    quiet()
    profile = get_profile(**overrides)
    keep_freed_memory()  # on a CPU, activations reuse freed memory; a no-op without glibc
    print(profile.describe())
    return profile


def progress(items: Iterable[T], what: str) -> Iterator[T]:
    """``items`` one by one, with a progress bar under the cell and a line per item in the build log.

    For a loop that runs for minutes (a grid of training runs). Jupyter shows a tqdm bar; the book's
    build, which executes the notebook in a kernel whose standard error is the build's, prints
    ``what: 3/12 (41 s)`` as each item finishes, so a long cell is never silent there either. The
    lines go to the kernel's own standard error, not into the page. The items pass through unchanged.
    """
    items = items if hasattr(items, "__len__") else list(items)
    start = time.perf_counter()
    try:
        log = sys.stderr.fileno()  # in a Jupyter kernel: the kernel's own stderr, not the notebook
    except (AttributeError, OSError, ValueError):
        log = None
    with tqdm(total=len(items), desc=what) as bar:
        for i, item in enumerate(items, 1):
            yield item
            bar.update()
            if log is not None:
                os.write(log, f"{what}: {i}/{len(items)} ({time.perf_counter() - start:.0f} s)\n".encode())
