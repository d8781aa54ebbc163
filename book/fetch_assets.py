"""Fetch the website's JavaScript assets from npm, so the book renders offline.

MathJax (math) and the Jupyter widgets HTML manager with require.js (widgets from their saved
state) are normally loaded from CDNs; a reader offline, or behind a firewall, would see raw LaTeX
and empty widgets. Each package is fetched with ``npm pack`` at a pinned version, checked
against a pinned sha256, and unpacked into ``book/_static/`` (not committed). Run by ``make book``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

STATIC = Path(__file__).parent / "_static"

# (npm spec, sha256 of the tarball, {path in the package: destination under _static})
ASSETS = [
    (
        "mathjax@3.2.2",
        "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09",
        {
            "package/es5/tex-chtml.js": "mathjax/tex-chtml.js",
            "package/es5/output/chtml/fonts/woff-v2": "mathjax/output/chtml/fonts/woff-v2",
        },
    ),
    (
        "@jupyter-widgets/html-manager@1.0.15",
        "2b9d65cb7913e1c7d671757a10008b32c9c2448d4429513371e55c07d6107638",
        {"package/dist": "widgets"},
    ),
    (
        "requirejs@2.3.8",
        "777158e89275e16bd51aec3ef714fbcb5dc45789e7078659933bc814916d7dec",
        {"package/require.js": "widgets/require.js"},
    ),
]


def fetch(spec: str, sha256: str, files: dict[str, str]) -> None:
    if all((STATIC / dest).exists() for dest in files.values()):
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["npm", "pack", spec, "--silent"], cwd=tmp, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"npm pack {spec} failed: {out.stderr.strip()}\nInstall Node.js/npm and retry.")
        tgz = Path(tmp) / out.stdout.strip().splitlines()[-1]
        digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
        if digest != sha256:
            sys.exit(f"{spec}: sha256 {digest} does not match the pinned {sha256}; nothing was written")
        with tarfile.open(tgz) as t:
            t.extractall(tmp, filter="data")
        for src, dest in files.items():
            target = STATIC / dest
            staging = target.with_name(target.name + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            staging.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if (Path(tmp) / src).is_dir() else shutil.copy)(Path(tmp) / src, staging)
            if target.is_dir():
                shutil.rmtree(target)
            staging.replace(target)


if __name__ == "__main__":
    for asset in ASSETS:
        fetch(*asset)
