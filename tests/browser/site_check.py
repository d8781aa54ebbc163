"""Open every page of a built site in headless Chromium and list what a reader would see broken.

Used by ``tests/browser/test_site.py``; also runnable by hand:
``python tests/browser/site_check.py _build/html [screenshot-dir]``.
"""

from __future__ import annotations

import functools
import http.server
import json
import sys
import threading
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pages(site: Path) -> list[str]:
    skip = {"genindex.html", "search.html", "index.html"}
    return sorted(
        str(p.relative_to(site))
        for p in site.rglob("*.html")
        if p.name not in skip and not p.relative_to(site).parts[0].startswith("_")
    )


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def check_site(site: Path, shots: Path | None = None) -> dict[str, list[str]]:
    """{page: [problems]} for every page; an empty list means the page is fine."""
    from playwright.sync_api import sync_playwright

    server, base = serve(site)
    report: dict[str, list[str]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for name in pages(site):
                report[name] = check_page(browser, base, name, shots)
            browser.close()
    finally:
        server.shutdown()
    return report


def check_page(browser, base: str, name: str, shots: Path | None) -> list[str]:
    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    # only what the site serves itself counts: anything from another host is refused
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(base) else r.abort())
    page.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" and base in (m.location.get("url") or base) and "ERR_FAILED" not in m.text
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "response",
        lambda r: (
            problems.append(f"HTTP {r.status}: {r.url}")
            if r.status >= 400 and r.url.startswith(base)
            else None
        ),
    )
    page.goto(f"{base}/{name}", wait_until="load")
    page.wait_for_timeout(300)
    facts = page.evaluate("""() => ({
        broken: [...document.images].filter(i => i.complete && i.naturalWidth === 0).map(i => i.src),
        math: document.querySelectorAll('div.math, span.math').length,
        typeset: document.querySelectorAll('mjx-container').length,
        colab: [...document.querySelectorAll('a')].some(a => a.href.includes('colab.research.google.com')),
        notebook: !!document.querySelector('div.cell'),
        widgets: document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length,
        rendered: document.querySelectorAll('.widget-box, .widget-inline-hbox, .widget-html, .jupyter-widgets').length,
        // code cells whose lines do not fit their column: the reader would have to scroll sideways
        wide: [...document.querySelectorAll('div.cell div.cell_input pre')]
            .filter(p => p.scrollWidth > p.clientWidth + 1)
            .map(p => Math.max(...p.textContent.split('\\n').map(l => l.length))),
        // how many characters of code one line of the column holds
        column: (() => {
            const pre = document.querySelector('div.cell div.cell_input pre');
            if (!pre) return null;
            const probe = document.createElement('span');
            probe.textContent = 'x'.repeat(100);
            pre.appendChild(probe);
            const per = probe.getBoundingClientRect().width / 100;
            probe.remove();
            const style = getComputedStyle(pre);
            const inner = pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
            return Math.floor(inner / per);
        })(),
    })""")
    if facts["math"] and not facts["typeset"]:
        page.wait_for_timeout(2000)
        facts["typeset"] = page.evaluate("document.querySelectorAll('mjx-container').length")
    problems += [f"broken image: {src}" for src in facts["broken"]]
    if facts["math"] and not facts["typeset"]:
        problems.append(f"{facts['math']} math elements but none typeset by MathJax")
    if facts["wide"]:
        problems.append(
            f"{len(facts['wide'])} code cell(s) wider than the column of {facts['column']} "
            f"characters (longest lines: {sorted(facts['wide'])[-3:]})"
        )
    if facts["notebook"] and not facts["colab"]:
        problems.append("chapter without a Colab launch link")
    if facts["widgets"] and not facts["rendered"]:
        page.wait_for_timeout(2000)
        if not page.evaluate("document.querySelectorAll('.jupyter-widgets').length"):
            problems.append(f"{facts['widgets']} widgets, none rendered from the saved state")
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=str(shots / (name.replace("/", "_").removesuffix(".html") + ".png")), full_page=True
        )
    page.close()
    return problems


if __name__ == "__main__":
    result = check_site(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    print(json.dumps(result, indent=1))
    sys.exit(any(result.values()))
