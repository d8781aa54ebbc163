"""book/build_times.py: each chapter's execution time, read from the book's execution cache."""

import importlib.util
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("build_times", ROOT / "book" / "build_times.py")
build_times = importlib.util.module_from_spec(spec)
sys.modules["build_times"] = build_times  # dataclasses look their module up
spec.loader.exec_module(build_times)

T0 = datetime(2026, 12, 7, 2, 0)


def record(name: str, seconds: float | None, minutes: int):
    data = {} if seconds is None else {"execution_seconds": seconds}
    return SimpleNamespace(uri=f"/book/chapters/{name}", data=data, created=T0 + timedelta(minutes=minutes))


def test_the_newest_record_of_each_chapter_counts_in_file_order():
    runs = build_times.newest_runs(
        [
            record("02_b.ipynb", 30.0, 5),
            record("01_a.ipynb", 10.0, 1),
            record("02_b.ipynb", 99.0, 2),
            record("03_c.ipynb", None, 9),
        ]
    )
    assert [(r.chapter, r.seconds) for r in runs] == [("01_a.ipynb", 10.0), ("02_b.ipynb", 30.0)]


def test_the_report_marks_cached_chapters_and_sets_the_total_against_the_budget():
    runs = build_times.newest_runs([record("01_a.ipynb", 10.0, 1), record("02_b.ipynb", 30.0, 5)])
    since = (T0 + timedelta(minutes=3)).replace(tzinfo=timezone.utc)
    text = build_times.report(runs, since, budget=30)
    lines = text.splitlines()
    assert "01_a.ipynb" in lines[1] and "from the cache" in lines[1] and "25%" in lines[1]
    assert "02_b.ipynb" in lines[2] and "from the cache" not in lines[2] and "75%" in lines[2]
    assert lines[-1].split()[2] == "40" and "10 s over the budget of 30 s" in lines[-1]
    assert "within the budget of 60 s" in build_times.report(runs, budget=60)
    assert "budget" not in build_times.report(runs)
    assert build_times.report([]) == "no executed chapter is recorded in the cache"


def test_it_reads_a_real_execution_cache(tmp_path, capsys):
    jupyter_cache = pytest.importorskip("jupyter_cache")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1", execution_count=1)])
    path = tmp_path / "01_a.ipynb"
    nbformat.write(nb, path)
    jupyter_cache.get_cache(tmp_path / "cache").cache_notebook_file(
        str(path), data={"execution_seconds": 12.4}, check_validity=False
    )
    assert build_times.main([str(tmp_path / "cache"), "--budget", "10"]) == 0
    out = capsys.readouterr().out
    assert "01_a.ipynb" in out and " 12 " in out and "over the budget of 10 s" in out


def test_without_a_cache_it_says_to_build_first(tmp_path, capsys):
    assert build_times.main([str(tmp_path / "nothing")]) == 0
    assert "make book" in capsys.readouterr().out
