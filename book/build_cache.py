"""The book's execution cache, keyed on everything that determines a chapter's outputs.

Jupyter Book's ``execute_notebooks: cache`` re-runs a notebook only when its code cells change. A
chapter's numbers also depend on the library it imports, the packages that compute and the profile,
so the cache lives in a folder named after a key over those: change the library, upgrade torch or
switch the profile, and the build finds an empty cache and executes every chapter again; change one
notebook's code, and jupyter-cache re-executes that chapter alone. The key covers

* the source of ``src/prompt_learning`` (every file, by content),
* the installed versions of the packages that compute (:data:`PACKAGES`) and of Python,
* the profile and the library's other ``PROMPT_LEARNING_*`` switches (not the cache locations).

The folders live outside the clone, under ``$PROMPT_LEARNING_BOOK_CACHE`` or the user cache
directory (``~/.cache/prompt_learning/book``), so a second build of the same content on the same
machine, CI's right after a build included, executes nothing. Only the newest :data:`KEEP` folders
of each profile are kept.

This file is both the Sphinx extension that points the build at the folder (``_config.yml``,
``local_extensions``) and a command line::

    python book/build_cache.py path --profile cpu    # the folder the cpu book's build uses
    python book/build_cache.py check --profile cpu   # exit 0 when every chapter is cached there
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "transformers", "peft", "datasets", "accelerate", "tokenizers", "numpy")
NOT_KEYED = {"PROMPT_LEARNING_CACHE", "PROMPT_LEARNING_BOOK_CACHE"}  # where things are, not what
KEEP = 3


def library_digest(root: Path = ROOT) -> str:
    """SHA-256 over every file of the library's source, by path and content."""
    digest = hashlib.sha256()
    library = root / "src" / "prompt_learning"
    if not library.is_dir():
        raise FileNotFoundError(f"no library source at {library}: run this from the book's checkout")
    for path in sorted(p for p in library.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(library).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def installed_versions() -> dict[str, str]:
    """The versions of the packages that compute the chapters' numbers, and Python's."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "absent"
    return versions


def switches(environ=os.environ) -> dict[str, str]:
    """The library's environment switches that change results: the profile, precision, allocator."""
    return {
        k: v for k, v in sorted(environ.items()) if k.startswith("PROMPT_LEARNING_") and k not in NOT_KEYED
    }


def key(root: Path = ROOT, environ=os.environ) -> str:
    """A short key over the library's source, the installed versions and the switches."""
    parts = [library_digest(root)]
    parts += [f"{k}={v}" for k, v in installed_versions().items()]
    parts += [f"{k}={v}" for k, v in switches(environ).items()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cache_root(environ=os.environ) -> Path:
    """``$PROMPT_LEARNING_BOOK_CACHE``, else ``book`` under the library's user cache directory."""
    if environ.get("PROMPT_LEARNING_BOOK_CACHE"):
        return Path(environ["PROMPT_LEARNING_BOOK_CACHE"]).expanduser()
    if environ.get("PROMPT_LEARNING_CACHE"):
        return Path(environ["PROMPT_LEARNING_CACHE"]).expanduser() / "book"
    import platformdirs

    return Path(platformdirs.user_cache_dir("prompt_learning")) / "book"


def cache_path(root: Path = ROOT, environ=os.environ) -> Path:
    """The execution cache of this content: ``<cache root>/<profile>-<key>``."""
    profile = environ.get("PROMPT_LEARNING_PROFILE") or "default"
    return cache_root(environ) / f"{profile}-{key(root, environ)}"


def prune(path: Path, keep: int = KEEP) -> list[Path]:
    """Remove all but the ``keep`` most recently used caches of ``path``'s profile (never ``path``)."""
    profile = path.name.rsplit("-", 1)[0]
    siblings = [
        p
        for p in path.parent.glob(f"{profile}-*")
        if p.is_dir() and p != path and p.name.rsplit("-", 1)[0] == profile
    ]
    siblings.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = siblings[max(keep - 1, 0) :]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed


def chapters(root: Path = ROOT) -> list[Path]:
    """The notebooks the table of contents lists, in its order."""
    import yaml

    found: list[Path] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for entry in (node.get("root"), node.get("file")):
                if isinstance(entry, str) and (root / f"{entry}.ipynb").exists():
                    found.append(root / f"{entry}.ipynb")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load((root / "_toc.yml").read_text()))
    return found


def missing(path: Path, notebooks: list[Path]) -> list[Path]:
    """The notebooks whose code has no executed record in the cache at ``path``."""
    if not (path / "global.db").exists():
        return list(notebooks)
    import nbformat
    from jupyter_cache import get_cache

    cache = get_cache(path)
    absent = []
    for notebook in notebooks:
        try:
            cache.match_cache_notebook(nbformat.read(notebook, as_version=4))
        except KeyError:
            absent.append(notebook)
    return absent


def _use_keyed_cache(app, config) -> None:
    """Sphinx ``config-inited``: point myst-nb's execution cache at this content's folder."""
    if config.nb_execution_mode != "cache":
        return
    path = cache_path(Path(app.srcdir), os.environ)
    path.mkdir(parents=True, exist_ok=True)
    os.utime(path)  # most recently used, for prune
    prune(path)
    config.nb_execution_cache_path = str(path)


def setup(app):
    app.connect("config-inited", _use_keyed_cache, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["path", "check"])
    parser.add_argument("--profile", help="the profile to key on (default: $PROMPT_LEARNING_PROFILE)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the book's checkout")
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    if args.profile:
        environ["PROMPT_LEARNING_PROFILE"] = args.profile
    path = cache_path(args.root, environ)
    if args.command == "path":
        print(path)
        return 0
    notebooks = chapters(args.root)
    if not notebooks:
        print(f"no notebook is listed in {args.root / '_toc.yml'}")
        return 2
    absent = missing(path, notebooks)
    if absent:
        names = ", ".join(p.stem for p in absent)
        print(f"not cached at {path}: {len(absent)} chapter(s) would execute ({names})")
        return 1
    print(f"every chapter is cached at {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
