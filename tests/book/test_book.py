"""The book's structure: every chapter listed, clean, launchable on Colab from the one repository URL."""

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def config():
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"] for part in toc["parts"] for c in part["chapters"]]


def cells(nb: Path):
    return json.loads(nb.read_text())["cells"]


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists():
    listed = toc_files()
    for nb in CHAPTERS:
        assert f"chapters/{nb.stem}" in listed, f"{nb.name} is not in _toc.yml"
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), entry


def test_chapters_are_committed_without_outputs():
    for nb in CHAPTERS:
        for c in cells(nb):
            if c["cell_type"] == "code":
                assert not c["outputs"] and c["execution_count"] is None, f"{nb.name} has outputs"


def test_chapters_start_with_a_title_and_the_colab_setup_cell():
    url = config()["repository"]["url"]
    for nb in CHAPTERS:
        cs = cells(nb)
        assert "".join(cs[0]["source"]).startswith("# "), f"{nb.name}: first cell must be the H1 title"
        first_code = "".join(next(c for c in cs if c["cell_type"] == "code")["source"])
        assert 'if "google.colab" in sys.modules:' in first_code, nb.name
        installs = re.findall(r"git\+(https://\S+?)[\"']", first_code)
        assert installs == [url], f"{nb.name}: installs {installs}, _config.yml says {url}"


def test_chapters_end_with_summary_and_exercises():
    for nb in CHAPTERS:
        text = "\n".join("".join(c["source"]) for c in cells(nb) if c["cell_type"] == "markdown")
        assert "## Summary" in text and "## Exercises" in text and "{exercise}" in text, nb.name


def test_colab_launch_button_is_configured():
    cfg = config()
    assert cfg["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert cfg["repository"]["url"].startswith("https://github.com/")


def test_colab_cell_installs_the_book_extra():
    # the cell installs the library with what the chapters import beyond it (pyproject's `book` extra)
    import tomllib

    url = config()["repository"]["url"]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "book" in extras
    for nb in CHAPTERS:
        first_code = "".join(next(c for c in cells(nb) if c["cell_type"] == "code")["source"])
        assert f'%pip install -q "prompt_learning[book] @ git+{url}"' in first_code, nb.name


def test_the_reference_page_lists_everything_the_package_exports():
    import prompt_learning

    page = (ROOT / "book" / "reference.md").read_text()
    documented = set(re.findall(r"[\w.]+", " ".join(re.findall(r":members:(.*)", page))))
    missing = [name for name in prompt_learning.__all__ if name not in documented]
    assert not missing, f"book/reference.md does not document {missing}"


def test_every_documented_member_has_a_docstring():
    """autodoc's ``:members:`` silently skips a member without a docstring: the page would lack it."""
    import importlib

    page = (ROOT / "book" / "reference.md").read_text()
    undocumented = []
    for module, members in re.findall(r"\.\. automodule:: ([\w.]+)\n\s+:members: (.*)", page):
        mod = importlib.import_module(module)
        for name in re.findall(r"\w+", members):
            if not (getattr(getattr(mod, name), "__doc__", None) or "").strip():
                undocumented.append(f"{module}.{name}")
    assert not undocumented, f"no docstring, so missing from the reference page: {undocumented}"


def test_code_lines_fit_the_text_column():
    """Code lines stay within 100 characters, what the website's column holds at 1,280 px
    (book/_static/wide-code.css; tests/browser/test_site.py measures the column)."""
    long = [
        (nb.name, i, len(line))
        for nb in CHAPTERS
        for i, c in enumerate(cells(nb))
        if c["cell_type"] == "code"
        for line in "".join(c["source"]).split("\n")
        if len(line) > 100 and not line.lstrip().startswith(("%", "!"))
    ]  # the Colab cell's install line
    assert not long, f"code lines over 100 characters (notebook, cell, length): {long[:10]} …"
