"""Two fixes that keep the website's pages free of JavaScript errors (checked by the browser test).

* sphinx-thebe registers its configuration script on every read pass; with more than one pass
  the page declares ``const THEBE_JS_URL`` twice and the browser raises a SyntaxError. Duplicate
  script tags are dropped from each page.
* The theme's colour mode defaults to an empty string, which its JavaScript reports as an
  invalid mode; the book sets ``auto`` explicitly.
"""

from __future__ import annotations


def _default_mode(app, config) -> None:
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "auto")
    config.html_context = context


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        # an inline script may carry filename None or "": the same script either way
        key = (
            getattr(js, "filename", str(js)) or "",
            tuple(sorted((getattr(js, "attributes", None) or {}).items())),
        )
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept


def setup(app):
    app.connect("config-inited", _default_mode)
    app.connect("html-page-context", _dedupe_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
