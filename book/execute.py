"""Execute the book's chapters into its execution cache, several kernels at once on a CPU.

jupyter-book runs one notebook after another, each kernel using every core. The book's models
are small: a second thread speeds a 2-core forward by ~1.6×, a second single-threaded kernel
beside the first adds ~1.25× throughput on top of that; ``benchmarks/parallel_build.py``
measures both. So on a CPU this script runs ``workers`` kernels of ``cores // workers`` threads,
longest chapter first, and stores each result exactly where the build looks for it
(``<output>/_build/.jupyter_cache``, keyed by the chapter's code). ``jupyter-book build`` then
finds every chapter cached and only renders. Chapters already cached are not run again.

    python book/execute.py [--output DIR] [--workers N] [--record]

A failing chapter stops the build with its traceback; nothing of it is cached. ``--record``
writes the measured seconds to ``book/execution_seconds.json``, the schedule's hint on a clean
machine (a wrong hint costs time, never a result).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
HINTS = ROOT / "book" / "execution_seconds.json"


def chapters(toc: Path = ROOT / "_toc.yml") -> list[Path]:
    """The notebooks the table of contents lists, in its order."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node and (ROOT / f"{node['file']}.ipynb").exists():
                found.append(ROOT / f"{node['file']}.ipynb")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(toc.read_text()))
    return found


def schedule(expected: dict[str, float]) -> list[str]:
    """The start order: longest expected first (unknown, ``inf``, before all), so that the
    longest chapter never starts last, behind the others."""
    return sorted(expected, key=lambda name: -expected[name])


def makespan(order: list[str], seconds: dict[str, float], workers: int) -> float:
    """Wall time of running ``order`` on ``workers`` slots, each next chapter on the first free slot."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    free = [0.0] * workers
    for name in order:
        i = free.index(min(free))
        free[i] += seconds[name]
    return max(free)


def threads_per_kernel(cores: int, workers: int) -> int:
    return max(1, cores // workers)


def _execute(path: str, timeout: int, threads: int) -> tuple[str, dict | None, float, str | None]:
    """Run one notebook in a fresh kernel (``threads`` intra-op threads); (path, nb, seconds, error)."""
    from jupyter_cache.executors.utils import single_nb_execution

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)  # the kernel inherits them; torch reads them at start
    nb = nbformat.read(path, as_version=4)
    result = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=timeout,
                                 allow_errors=False, meta_override=True)
    return path, (nb if result.err is None else None), result.time, result.exc_string


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=".", help="jupyter-book's --path-output (default: .)")
    parser.add_argument("--workers", type=int, default=None,
                        help="kernels at once (default: 2 on a CPU with 2+ cores, 1 on a GPU)")
    parser.add_argument("--record", action="store_true", help=f"write the seconds to {HINTS.name}")
    args = parser.parse_args(argv)
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    config = yaml.safe_load((ROOT / "_config.yml").read_text()).get("execute", {})
    if config.get("execute_notebooks") != "cache":
        print("execute.py: the book does not use the execution cache; nothing to do")
        return 0
    cache = get_cache(str((ROOT / args.output / "_build" / ".jupyter_cache").resolve()))
    cores = os.cpu_count() or 1
    workers = args.workers or (1 if _has_gpu() or cores < 2 else 2)
    threads = threads_per_kernel(cores, workers)
    todo = {}
    for path in chapters():
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            todo[path.name] = path
    if not todo:
        print("execute.py: every chapter is cached")
        return 0
    hints = json.loads(HINTS.read_text()) if HINTS.exists() else {}
    expected = {name: hints.get(name, float("inf")) for name in todo}
    order = schedule(expected)
    print(f"execute.py: {len(order)} chapters, {workers} kernels × {threads} threads, "
          f"longest first: {', '.join(order)}", flush=True)
    timeout = int(config.get("timeout", 1200))
    seconds, failed, started = {}, None, time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        pending = {pool.submit(_execute, str(todo[name]), timeout, threads) for name in order[:workers]}
        queue = order[workers:]
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                path, nb, took, error = future.result()
                name = Path(path).name
                if nb is None:
                    failed = failed or (name, error)
                    print(f"execute.py: {name} FAILED after {took:.0f} s", flush=True)
                    continue
                cache.cache_notebook_bundle(CacheBundleIn(nb, path, data={"execution_seconds": took}),
                                            check_validity=False, overwrite=True)
                seconds[name] = took
                print(f"execute.py: {name} executed in {took:.0f} s", flush=True)
            while queue and len(pending) < workers and failed is None:
                pending.add(pool.submit(_execute, str(todo[queue.pop(0)]), timeout, threads))
    wall = time.perf_counter() - started
    print(f"execute.py: {len(seconds)} chapters in {wall:.0f} s of wall time "
          f"({sum(seconds.values()):.0f} s of kernel time)", flush=True)
    if args.record and seconds:
        HINTS.write_text(json.dumps(hints | {k: round(v) for k, v in seconds.items()}, indent=1,
                                    sort_keys=True) + "\n")
    if failed is not None:
        print(f"\nexecute.py: {failed[0]} raised an error; fix it and run `make book` again:\n"
              f"{failed[1]}", file=sys.stderr)
        return 1
    return 0


def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
