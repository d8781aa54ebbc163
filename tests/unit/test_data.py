"""Corpora: fixed balanced test splits, disjoint pools, few-shot sampling with clear errors."""

import collections

import pytest

from prompt_learning.data import (
    DataError,
    bbc_news,
    chinese_reviews,
    few_shot,
    movie_reviews,
    stratified_head,
)


@pytest.fixture(scope="module")
def reviews():
    return movie_reviews()


def test_movie_reviews_split_is_balanced_disjoint_and_large(reviews):
    test, pool = reviews["test"], reviews["pool"]
    assert len(test) >= 1000
    assert collections.Counter(test["label"]) == {0: 500, 1: 500}
    assert not set(test["text"]) & set(pool["text"])
    assert test.features["label"].names == ["negative", "positive"]
    # labels follow the sign of the human score; neutral sentences were dropped
    assert all((s > 0) == bool(y) and abs(s) >= 0.5 for s, y in zip(test["score"], test["label"]))


def test_splits_are_fixed(reviews):
    again = movie_reviews()
    assert again["test"]["text"][:20] == reviews["test"]["text"][:20]


def test_bbc_keeps_headline_and_body_apart():
    ds = bbc_news()
    row = ds["test"][0]
    assert row["headline"] and row["body"] and row["text"].startswith(row["headline"])
    firsts = [body.strip().split("\n")[0].strip() for body in ds["test"]["body"]]
    assert all(first != h for first, h in zip(firsts, ds["test"]["headline"]))  # the body does not repeat it
    assert ds["test"].features["label"].names == ["business", "entertainment", "politics", "sport", "tech"]
    assert set(collections.Counter(ds["test"]["label"]).values()) == {100}
    assert not set(ds["test"]["body"]) & set(ds["pool"]["body"])


def test_chinese_reviews_are_deduplicated_and_unambiguous():
    ds = chinese_reviews()
    texts = list(ds["pool"]["text"]) + list(ds["test"]["text"])
    assert len(texts) == len(set(texts))  # no duplicates, and no text with two labels
    assert collections.Counter(ds["test"]["label"]) == {0: 500, 1: 500}


def test_few_shot_samples_k_per_class_reproducibly(reviews):
    a = few_shot(reviews["pool"], 4, seed=3)
    b = few_shot(reviews["pool"], 4, seed=3)
    c = few_shot(reviews["pool"], 4, seed=4)
    assert collections.Counter(a["label"]) == {0: 4, 1: 4}
    assert a["text"] == b["text"] and a["text"] != c["text"]


def test_few_shot_beyond_the_pool_is_a_clear_error(reviews):
    with pytest.raises(DataError, match="exceeds the pool.*choose k <="):
        few_shot(reviews["pool"], 100_000, seed=0)
    with pytest.raises(DataError, match="at least 1"):
        few_shot(reviews["pool"], 0, seed=0)
    with pytest.raises(DataError, match=r"pass ds\['pool'\]"):
        few_shot(reviews, 4, seed=0)


def test_stratified_head_is_balanced_and_fixed(reviews):
    sub = stratified_head(reviews["test"], 10)
    assert collections.Counter(sub["label"]) == {0: 5, 1: 5}
    assert sub["text"] == stratified_head(reviews["test"], 10)["text"]
