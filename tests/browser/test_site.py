"""The website in a real browser: every page free of errors, math typeset, images loaded,
a Colab launch link on every chapter, widgets rendered from their saved state.

Takes ``$BOOK_HTML`` or ``_build/html`` when built (``make book``), else builds the smoke-profile
site into ``_build/smoke``. Screenshots of every page are kept in ``test-artifacts/screenshots``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from site_check import CHROMIUM, check_site, pages  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", autouse=True)
def chromium():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(
                f"{CHROMIUM} is missing: CI must install Debian's chromium (apt-get install chromium)"
            )
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")


@pytest.fixture(scope="module")
def site() -> Path:
    for candidate in (os.environ.get("BOOK_HTML"), ROOT / "_build" / "html"):
        if candidate and (Path(candidate) / "index.html").exists():
            return Path(candidate)
    out = ROOT / "_build" / "smoke"
    env = dict(os.environ, PROMPT_LEARNING_PROFILE="smoke")
    # Jupyter Book 1 has no ``python -m jupyter_book``: its command sits beside the interpreter.
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    subprocess.run(
        [str(jupyter_book), "build", str(ROOT), "-n", "-W", "--keep-going", "--path-output", str(out)],
        check=True,
        env=env,
        cwd=ROOT,
    )
    return out / "_build" / "html"


def test_every_page_renders_cleanly(site):
    report = check_site(site, ROOT / "test-artifacts" / "screenshots")
    assert any(name.startswith("chapters/") for name in report), "no chapter pages found"
    broken = {page: problems for page, problems in report.items() if problems}
    assert not broken, broken


def test_the_check_catches_a_broken_page(site, tmp_path):
    """Prove the check can fail: break a copy of one chapter page on purpose."""
    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    page = next((copy / "chapters").glob("*.html"))
    html = page.read_text()
    wide = '<div class="cell"><div class="cell_input"><pre>' + "x = 1  # " + "y" * 300 + "</pre></div></div>"
    html = html.replace(
        "</body>", f'<img src="no-such-figure.png"><script>console.error("boom")</script>{wide}</body>'
    )
    page.write_text(html)
    report = check_site(copy)
    problems = " | ".join(report[f"chapters/{page.name}"])
    assert "broken image" in problems and "boom" in problems and "HTTP 404" in problems
    assert "wider than the column" in problems


def test_a_code_line_of_the_books_length_fits_the_column(site):
    """The chapters' code lines are at most 100 characters (test_book); the column must hold them."""
    from playwright.sync_api import sync_playwright

    from site_check import ARGS, serve

    server, base = serve(site)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/{next(n for n in pages(site) if n.startswith('chapters/'))}")
            width = page.evaluate("""() => {
                const pre = document.querySelector('div.cell div.cell_input pre');
                const probe = pre.cloneNode(false);  // the same block, holding one 100-character line
                probe.textContent = 'x'.repeat(100);
                pre.parentNode.insertBefore(probe, pre.nextSibling);
                const fits = probe.scrollWidth <= probe.clientWidth + 1;
                probe.remove();
                return fits;
            }""")
            browser.close()
    finally:
        server.shutdown()
    assert width, "a 100-character code line does not fit the chapters' code column at 1280 px"
