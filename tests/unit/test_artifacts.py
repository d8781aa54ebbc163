"""Artifacts: verified before they enter the cache; damaged files are fetched again."""

import hashlib
import shutil
from pathlib import Path

import pytest

from prompt_learning import artifacts
from prompt_learning.artifacts import Artifact, ArtifactError


@pytest.fixture
def fake_index(tmp_path, monkeypatch):
    """A pinned artifact whose 'download' copies a local file; counts downloads."""
    monkeypatch.setenv("PROMPT_LEARNING_CACHE", str(tmp_path / "cache"))
    payload = tmp_path / "upstream" / "pkg-1.0.tar.gz"
    payload.parent.mkdir()
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        data = b"hello corpus\n"
        info = tarfile.TarInfo("pkg-1.0/data.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    payload.write_bytes(buf.getvalue())
    art = Artifact("pkg", "1.0", payload.name, hashlib.sha256(payload.read_bytes()).hexdigest(), "MIT")
    monkeypatch.setitem(artifacts.ARTIFACTS, "fake", art)
    calls = []

    def download(a, into: Path) -> Path:
        calls.append(a.name)
        shutil.copy(payload, into / a.filename)
        return into / a.filename

    monkeypatch.setattr(artifacts, "_download", download)
    return payload, calls


def test_fetch_verifies_caches_and_reuses(fake_index):
    payload, calls = fake_index
    path = artifacts.fetch("fake")
    assert path.read_bytes() == payload.read_bytes()
    artifacts.fetch("fake")
    assert calls == ["pkg"]  # second call served from the cache


def test_corrupted_cached_file_is_fetched_again(fake_index):
    payload, calls = fake_index
    path = artifacts.fetch("fake")
    path.write_bytes(b"tampered")
    again = artifacts.fetch("fake")
    assert again.read_bytes() == payload.read_bytes()
    assert calls == ["pkg", "pkg"]


def test_tampered_download_never_enters_the_cache(fake_index):
    payload, _ = fake_index
    payload.write_bytes(b"someone changed the upstream file")
    with pytest.raises(ArtifactError, match="sha256"):
        artifacts.fetch("fake")
    files = artifacts.cache_dir() / "files"
    assert [p.name for p in files.iterdir()] == []  # nothing half-written, no temp folder left


def test_extracted_unpacks_once_and_again_after_refetch(fake_index):
    out = artifacts.extracted("fake")
    assert (out / "pkg-1.0" / "data.txt").read_text() == "hello corpus\n"
    assert artifacts.extracted("fake") == out


def test_unknown_artifact_names_the_known_ones():
    with pytest.raises(KeyError, match="known"):
        artifacts.fetch("nope")
