"""A reader's install, in a fresh virtual environment: torch, then only ``prompt_learning[book]``.

This is what the Colab cell does (Colab brings its own torch): afterwards every module a chapter
imports must import, and so must every module of the library. The chapters' imports are read
from their code cells, so the test follows the chapters as they change. The package is built from
a copy of the working tree (tracked and untracked, not ignored files), non-editable, so the
build's scratch folders never land in the tree.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TORCH = os.environ.get("PROMPT_LEARNING_TEST_TORCH", "torch==2.13.0")  # the CPU wheel on local disk

IMPORT_ALL = """
import importlib, json, pkgutil, sys, traceback
failed = {}
def attempt(name):
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=3)
for name in json.loads(sys.argv[1]):
    attempt(name)
import prompt_learning
library = sorted(m.name for m in pkgutil.walk_packages(prompt_learning.__path__, "prompt_learning."))
for name in library:
    attempt(name)
print(json.dumps({"failed": failed, "library": library, "file": prompt_learning.__file__}))
"""


def chapter_imports(root: Path = ROOT) -> set[str]:
    """Every absolute module a chapter's code cells import (IPython magics read as ``pass``)."""
    modules: set[str] = set()
    for nb in sorted((root / "chapters").glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            lines = "".join(cell["source"]).splitlines()
            code = "\n".join(
                line[: len(line) - len(line.lstrip())] + "pass"
                if line.lstrip().startswith(("%", "!"))
                else line
                for line in lines
            )
            for node in ast.walk(ast.parse(code, filename=nb.name)):
                if isinstance(node, ast.Import):
                    modules.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module)
    return modules


def library_imports(root: Path = ROOT) -> set[str]:
    """Every absolute module the library imports anywhere, inside functions too (``rouge_score`` is
    imported where it is used), except imports guarded by ``try`` (optional by design)."""
    modules: set[str] = set()
    for path in (root / "src" / "prompt_learning").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        guarded = {
            id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for b in t.body for n in ast.walk(b)
        }
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module)
    return {m for m in modules if not m.startswith("prompt_learning")}


def source_modules(root: Path = ROOT) -> set[str]:
    package = root / "src" / "prompt_learning"
    return {
        "prompt_learning." + ".".join(p.relative_to(package).with_suffix("").parts)
        for p in package.rglob("*.py")
        if p.name != "__init__.py"
    }


def working_tree_copy(dest: Path) -> Path:
    """The files of the working tree that git does not ignore, copied to ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, **kw)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_chapter_imports_are_read_from_the_chapters():
    found = chapter_imports()
    assert {"sys", "torch", "peft", "matplotlib.pyplot", "prompt_learning.notebook"} <= found


def test_fresh_install_of_the_book_extra_imports_everything(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git working tree to copy the package from")
    venv, tree = tmp_path / "venv", working_tree_copy(tmp_path / "tree")
    try:
        report = install_and_import(venv, tree, cwd=tmp_path)
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 1.5 GB, mostly torch
    assert not report["failed"], "\n".join(f"{m}:\n{tb}" for m, tb in report["failed"].items())
    assert Path(report["file"]).is_relative_to(venv), report["file"]  # installed, not the source tree
    assert source_modules() <= set(report["library"]), "modules missing from the installed package"


def install_and_import(venv: Path, tree: Path, cwd: Path) -> dict:
    """torch, then only ``<tree>[book]`` into a new ``venv``; then import what the chapters import."""
    run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    py = str(venv / "bin" / "python")
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run([*pip, TORCH], timeout=600)
    run([*pip, f"{tree}[book]"], timeout=900)
    run([py, "-m", "pip", "check"], timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        OMP_NUM_THREADS="1",
        MPLBACKEND="Agg",
        PYTHONNOUSERSITE="1",
    )
    done = run(
        [py, "-c", IMPORT_ALL, json.dumps(sorted(chapter_imports() | library_imports()))],
        timeout=600,
        env=env,
        cwd=cwd,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
