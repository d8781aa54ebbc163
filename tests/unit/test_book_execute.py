"""book/execute.py runs the chapters into the build's cache: the right ones, in a good order, found again."""

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("book_execute", ROOT / "book" / "execute.py")
execute = importlib.util.module_from_spec(spec)
spec.loader.exec_module(execute)


def test_the_chapters_are_the_notebooks_of_the_table_of_contents_in_its_order():
    found = [p.name for p in execute.chapters()]
    assert found == sorted(p.name for p in (ROOT / "chapters").glob("[0-9]*.ipynb"))


def test_the_longest_chapter_starts_first_and_an_unknown_one_before_it():
    order = execute.schedule({"a": 60, "b": 900, "c": float("inf"), "d": 300})
    assert order == ["c", "b", "d", "a"]


def test_longest_first_beats_the_table_of_contents_order_on_the_books_own_hints():
    hints = json.loads(execute.HINTS.read_text())
    assert set(hints) == {p.name for p in execute.chapters()}  # a hint for every chapter
    toc = [p.name for p in execute.chapters()]
    # the last chapter is the longest: started last it would run alone at the end
    assert execute.makespan(execute.schedule(hints), hints, 2) < execute.makespan(toc, hints, 2)
    assert execute.makespan(toc, hints, 1) == pytest.approx(sum(hints.values()))


def test_makespan_by_hand():
    # slots: [5, 3] → 2 goes to the slot at 3 → [5, 5] → 4 to the first → 9
    assert execute.makespan(["x", "y", "z", "w"], {"x": 5, "y": 3, "z": 2, "w": 4}, 2) == 9
    with pytest.raises(ValueError, match="workers"):
        execute.makespan(["x"], {"x": 1}, 0)


def test_threads_share_the_cores_and_never_drop_to_zero():
    assert execute.threads_per_kernel(2, 2) == 1
    assert execute.threads_per_kernel(16, 2) == 8
    assert execute.threads_per_kernel(1, 2) == 1


def test_an_executed_notebook_is_found_by_the_cache_as_the_build_matches_it(tmp_path):
    """What execute.py stores is what myst-nb's cache lookup (match_cache_notebook) then finds."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os\nprint(os.environ['OMP_NUM_THREADS'])")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "one.ipynb"
    nbformat.write(nb, path)
    _, executed, seconds, error = execute._execute(str(path), timeout=120, threads=3)
    assert error is None and seconds > 0
    assert executed.cells[0].outputs[0]["text"].strip() == "3"  # the kernel got its thread count
    cache = get_cache(str(tmp_path / "cache"))
    with pytest.raises(KeyError):
        cache.match_cache_notebook(nbformat.read(path, as_version=4))
    cache.cache_notebook_bundle(CacheBundleIn(executed, str(path)), check_validity=False, overwrite=True)
    record = cache.match_cache_notebook(nbformat.read(path, as_version=4))  # the unexecuted file
    _, merged = cache.merge_match_into_notebook(nbformat.read(path, as_version=4))
    assert record is not None and merged.cells[0].outputs[0]["text"].strip() == "3"
