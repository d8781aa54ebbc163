"""book/build_cache.py: the execution cache is keyed on the code, the library, the packages and the profile.

The last test builds a one-chapter book twice with the book's own execution settings: a change to a
library constant must re-execute the chapter (with a cache keyed on the notebook's code alone, as
Jupyter Book's is, the second build would show the old value).
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("build_cache", ROOT / "book" / "build_cache.py")
build_cache = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_cache)


def library(tmp_path: Path, answer: int = 41) -> Path:
    """A checkout with a one-file library, ``ANSWER = answer``."""
    package = tmp_path / "src" / "prompt_learning"
    package.mkdir(parents=True, exist_ok=True)
    (package / "answer.py").write_text(f"ANSWER = {answer}\n")
    return tmp_path


def test_the_key_follows_the_library_source(tmp_path):
    root = library(tmp_path)
    env = {"PROMPT_LEARNING_PROFILE": "cpu"}
    first = build_cache.key(root, env)
    assert build_cache.key(root, env) == first  # deterministic
    (root / "src" / "prompt_learning" / "answer.py").write_text("ANSWER = 42\n")
    assert build_cache.key(root, env) != first
    (root / "src" / "prompt_learning" / "answer.py").write_text("ANSWER = 41\n")
    assert build_cache.key(root, env) == first
    (root / "src" / "prompt_learning" / "new.py").write_text("")
    assert build_cache.key(root, env) != first


def test_bytecode_caches_do_not_change_the_key(tmp_path):
    root = library(tmp_path)
    first = build_cache.key(root, {})
    (root / "src" / "prompt_learning" / "__pycache__").mkdir()
    (root / "src" / "prompt_learning" / "__pycache__" / "answer.cpython-311.pyc").write_bytes(b"\0")
    assert build_cache.key(root, {}) == first


def test_the_key_follows_the_profile_and_switches_but_not_where_caches_live(tmp_path):
    root = library(tmp_path)
    cpu = build_cache.key(root, {"PROMPT_LEARNING_PROFILE": "cpu"})
    assert build_cache.key(root, {"PROMPT_LEARNING_PROFILE": "smoke"}) != cpu
    assert build_cache.key(root, {"PROMPT_LEARNING_PROFILE": "cpu", "PROMPT_LEARNING_CPU_BF16": "0"}) != cpu
    assert (
        build_cache.key(
            root,
            {
                "PROMPT_LEARNING_PROFILE": "cpu",
                "PROMPT_LEARNING_CACHE": "/x",
                "PROMPT_LEARNING_BOOK_CACHE": "/y",
                "HOME": "/z",
            },
        )
        == cpu
    )


def test_the_key_follows_the_installed_versions(tmp_path, monkeypatch):
    root = library(tmp_path)
    first = build_cache.key(root, {})
    versions = build_cache.installed_versions()
    assert set(versions) >= {"python", "torch", "transformers", "peft", "datasets", "accelerate"}
    monkeypatch.setattr(build_cache, "installed_versions", lambda: versions | {"torch": "9.9.9"})
    assert build_cache.key(root, {}) != first


def test_the_cache_lives_outside_the_clone(tmp_path):
    root = library(tmp_path)
    env = {"PROMPT_LEARNING_PROFILE": "cpu", "PROMPT_LEARNING_BOOK_CACHE": str(tmp_path / "c")}
    path = build_cache.cache_path(root, env)
    assert path.parent == tmp_path / "c" and path.name.startswith("cpu-")
    assert build_cache.cache_root({"PROMPT_LEARNING_CACHE": "/a"}) == Path("/a/book")
    assert ROOT not in build_cache.cache_root({}).parents


def test_a_missing_library_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no library source"):
        build_cache.key(tmp_path, {})


def test_prune_keeps_the_newest_caches_of_the_same_profile(tmp_path):
    made = []
    for i in range(5):
        made.append(tmp_path / f"cpu-{i:016x}")
        made[-1].mkdir()
        os.utime(made[-1], (1000 + i, 1000 + i))
    (tmp_path / "smoke-0000000000000000").mkdir()
    current = made[0]  # the one in use is never removed, however old
    removed = build_cache.prune(current, keep=3)
    assert sorted(removed) == made[1:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [current.name, made[3].name, made[4].name, "smoke-0000000000000000"]
    )


def test_the_chapters_are_read_from_the_table_of_contents():
    found = build_cache.chapters(ROOT)
    assert found and all(p.suffix == ".ipynb" for p in found)
    assert found == sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def test_check_says_what_would_execute(tmp_path, capsys):
    root = library(tmp_path)
    (root / "_toc.yml").write_text("format: jb-book\nroot: one\n")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), root / "one.ipynb")
    os.environ["PROMPT_LEARNING_BOOK_CACHE"] = str(tmp_path / "cache")
    try:
        assert build_cache.main(["check", "--root", str(root), "--profile", "cpu"]) == 1
        assert "1 chapter(s) would execute (one)" in capsys.readouterr().out
    finally:
        del os.environ["PROMPT_LEARNING_BOOK_CACHE"]


# --- the whole mechanism, through Jupyter Book ---------------------------------------------------


def book(tmp_path: Path) -> Path:
    """A one-chapter book whose chapter prints the library's constant, built with the book's own
    execution settings and local extensions (from the real ``_config.yml``)."""
    real = yaml.safe_load((ROOT / "_config.yml").read_text())
    root = library(tmp_path / "book")
    for rel in ("book/build_cache.py", "book/_ext/site_fixes.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text((ROOT / rel).read_text())
    config = {
        "title": "staleness",
        "only_build_toc_files": True,
        "exclude_patterns": ["_build"],
        "execute": real["execute"] | {"timeout": 120},
        "sphinx": {
            "local_extensions": real["sphinx"]["local_extensions"],
            "config": {"nb_kernel_rgx_aliases": {".*": "python3"}},
        },
    }
    (root / "_config.yml").write_text(yaml.safe_dump(config))
    (root / "_toc.yml").write_text("format: jb-book\nroot: chapter\n")
    cell = 'import pathlib\nprint(pathlib.Path("src/prompt_learning/answer.py").read_text())'
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# A chapter"), nbformat.v4.new_code_cell(cell)]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "chapter.ipynb")
    return root


def build(root: Path, cache: Path) -> str:
    env = dict(os.environ, PROMPT_LEARNING_BOOK_CACHE=str(cache), PROMPT_LEARNING_PROFILE="cpu")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    subprocess.run(
        [str(jupyter_book), "build", str(root), "-n", "-W", "--keep-going"],
        check=True,
        env=env,
        cwd=root,
        capture_output=True,
    )
    return (root / "_build" / "html" / "chapter.html").read_text()


@pytest.mark.slow
def test_a_library_change_re_executes_the_chapter_and_nothing_else_does(tmp_path):
    from jupyter_cache import get_cache

    root, cache = book(tmp_path), tmp_path / "cache"
    assert "ANSWER = 41" in build(root, cache)
    assert "ANSWER = 41" in build(root, cache)  # the same content again
    (root / "src" / "prompt_learning" / "answer.py").write_text("ANSWER = 42\n")
    assert "ANSWER = 42" in build(root, cache), "a library change must re-execute the chapter"
    # one folder per content; the unchanged rebuild executed nothing (one record in the first)
    first, second = sorted(cache.iterdir(), key=lambda p: p.stat().st_mtime)
    assert [len(get_cache(p).list_cache_records()) for p in (first, second)] == [1, 1]
