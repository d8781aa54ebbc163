"""How long each chapter took to execute, read from the book's execution cache. Run by ``make book``.

Jupyter Book executes a chapter only when its inputs changed and records the seconds it took in its
execution cache (the folder ``book/build_cache.py`` keys on the code, library, packages and profile).
After a build this prints the CPU it ran on, one line per chapter (the newest record of each), marks
the chapters this build took from the cache rather than ran, and sets the total against a budget, so
every build and every CI log shows where the time goes and on what machine:

    python book/build_times.py --since 1765000000 --budget 3600     # the cache of this content
    python book/build_times.py ~/.cache/prompt_learning/book/cpu-0123456789abcdef
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


@dataclass(frozen=True)
class Run:
    """One chapter's newest execution: its file, its seconds, and when it was recorded (UTC)."""

    chapter: str
    seconds: float
    recorded: datetime


def newest_runs(records) -> list[Run]:
    """The newest record of each notebook, in file order, from jupyter-cache's cache records."""
    newest: dict[str, Run] = {}
    for r in records:
        seconds = (r.data or {}).get("execution_seconds")
        if seconds is None:
            continue
        run = Run(Path(r.uri).name, float(seconds), r.created.replace(tzinfo=timezone.utc))
        if run.chapter not in newest or run.recorded > newest[run.chapter].recorded:
            newest[run.chapter] = run
    return [newest[name] for name in sorted(newest)]


def report(runs: list[Run], since: datetime | None = None, budget: float | None = None) -> str:
    """The table: one line per chapter, then the total of the executions and the budget."""
    if not runs:
        return "no executed chapter is recorded in the cache"
    width = max(len(r.chapter) for r in runs)
    lines = [f"{'chapter':<{width}}  seconds  share"]
    total = sum(r.seconds for r in runs)
    for r in runs:
        cached = since is not None and r.recorded < since
        lines.append(
            f"{r.chapter:<{width}}  {r.seconds:7.0f}  {r.seconds / total:5.0%}"
            + ("  (from the cache: not run by this build)" if cached else "")
        )
    line = f"{'all chapters':<{width}}  {total:7.0f}"
    if budget:
        over = total - budget
        line += (
            f"  ({over:,.0f} s over the budget of {budget:,.0f} s)"
            if over > 0
            else f"  (within the budget of {budget:,.0f} s)"
        )
    lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "cache",
        type=Path,
        nargs="?",
        default=None,
        help="an execution cache folder (default: the one of this content and profile)",
    )
    parser.add_argument(
        "--since",
        type=float,
        default=None,
        help="the build's start (Unix seconds): older records are marked as cached",
    )
    parser.add_argument("--budget", type=float, default=None, help="seconds the chapters may take")
    args = parser.parse_args(argv)
    if args.cache is None:
        sys.path.insert(0, str(Path(__file__).parent))
        from build_cache import cache_path

        args.cache = cache_path()
    if not (args.cache / "global.db").exists():
        print(f"no execution cache at {args.cache}: build the book first (make book)")
        return 0
    from jupyter_cache import get_cache  # installed with jupyter-book

    from prompt_learning.precision import cpu_description

    print(f"on {cpu_description()}")
    since = datetime.fromtimestamp(args.since, timezone.utc) if args.since is not None else None
    print(report(newest_runs(get_cache(args.cache).list_cache_records()), since, args.budget))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
