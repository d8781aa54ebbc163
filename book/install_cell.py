"""Write the Colab install cell, the first code cell of every chapter, from ``_config.yml``.

One setting, ``repository.url``, serves the launch button and the cell, so a fork that changes it
gets chapters that install its own code. The cell installs the library with its ``book`` extra
(pyproject.toml: what the chapters import beyond the library) and only on Colab; elsewhere the
environment already has it. Run ``python book/install_cell.py`` after changing the URL;
``--check`` only reports chapters whose cell differs (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXTRA = "book"


def repository_url(root: Path = ROOT) -> str:
    return yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]


def requirement(url: str) -> str:
    """The one requirement the cell installs: ``prompt_learning[book] @ git+<url>``."""
    return f"prompt_learning[{EXTRA}] @ git+{url}"


def cell_source(url: str) -> list[str]:
    lines = [
        "# On Colab, install the book's library first; elsewhere it is already installed.",
        "import sys",
        'if "google.colab" in sys.modules:',
        f'    %pip install -q "{requirement(url)}"',
    ]
    return [line + "\n" for line in lines[:-1]] + lines[-1:]


def chapters(root: Path = ROOT) -> list[Path]:
    return sorted((root / "chapters").glob("[0-9][0-9]_*.ipynb"))


def write_cell(notebook: Path, source: list[str], check: bool = False) -> bool:
    """Put ``source`` into the first code cell of ``notebook``; True if it had to change.

    Only that cell's source changes; the file is read and written back at once, in the
    formatting the chapters are kept in (one-space indent, UTF-8 unescaped, final newline).
    """
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    if cell["source"] == source:
        return False
    if not check:
        cell["source"] = source
        notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale cells, change nothing")
    args = parser.parse_args(argv)
    source = cell_source(repository_url())
    stale = [nb.name for nb in chapters() if write_cell(nb, source, check=args.check)]
    verb = "stale" if args.check else "updated"
    print(f"{verb}: {', '.join(stale) or 'none'} ({requirement(repository_url())})")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
