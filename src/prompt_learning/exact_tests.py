"""Exact null distributions for paired tests: McNemar's test and the sign-flip test.

Two methods scored on the same items differ only on the items where one is right and the other
wrong. Under "no difference", which of the two wins such an item is a fair coin, so the counts
are binomial with ``p = 1/2`` and the p-values can be computed exactly, not approximated:

- :func:`mcnemar_p`: one run each, the discordant counts ``b`` and ``c`` (McNemar 1947);
- :func:`sign_flip_p`: several seeds, the per-item net wins ``Σ_s (a_si − b_si)``, each item's
  sign flipped at random (Fisher's randomisation test, exact by convolution).

:mod:`prompt_learning.stats` builds its comparisons and verdicts on these.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError


def check_count(k: int, name: str, what: str, least: int = 0) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < least:
        raise InputError(f"{name} must be {what} (a whole number ≥ {least}); got {k!r}")


def _half_binomial_pmf(n: int) -> np.ndarray:
    """``P(X = k)`` for ``X ~ Bin(n, 1/2)``, ``k = 0..n``: shape ``(n + 1,)``, exactly symmetric."""
    h = n // 2
    i = np.arange(h)
    half = np.concatenate(([0.0], np.cumsum(np.log(n - i) - np.log(i + 1))))  # log C(n, 0..h)
    log_c = np.concatenate((half, half[: n - h][::-1]))  # log C(n, 0..n)
    return np.exp(log_c - n * math.log(2))


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts ``b = a_only``, ``c = b_only``.

    ``p = min(1, 2 P(X ≤ min(b, c)))`` with ``X ~ Bin(b + c, 1/2)``; ``p = 1`` when ``b + c = 0``.

    >>> round(mcnemar_p(10, 2), 4)  # 2 (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 158 / 4096
    0.0386
    """
    check_count(a_only, "a_only", "a count of discordant items")
    check_count(b_only, "b_only", "a count of discordant items")
    m = int(a_only) + int(b_only)
    if m == 0:
        return 1.0
    return min(1.0, 2.0 * float(_half_binomial_pmf(m)[: min(a_only, b_only) + 1].sum()))


def sign_flip_p(net: np.ndarray) -> float:
    """Exact two-sided p-value of ``T = Σ_i net_i`` when each item's sign is flipped at random.

    ``net (N,)`` integers: per item, Σ_s (a_si − b_si). The items with ``|net_i| = k`` add
    ``k (2 X_k − n_k)``, ``X_k ~ Bin(n_k, 1/2)``; so ``T = 2Y − Σ_k k n_k`` with ``Y = Σ_k k X_k``,
    whose exact distribution is the convolution of the binomials stretched by ``k``.
    """
    mags = np.abs(net[net != 0]).astype(np.int64)
    if mags.size == 0:
        return 1.0
    dist = np.ones(1)  # P(Y = y), y = 0, 1, ...
    for k, count in zip(*np.unique(mags, return_counts=True)):
        pmf, k = _half_binomial_pmf(int(count)), int(k)
        out = np.zeros(dist.size + k * (pmf.size - 1))  # P(Y + k X = y)
        for r in range(min(k, dist.size)):  # residues mod k convolve separately
            out[r::k] = np.convolve(dist[r::k], pmf)
        dist = out
    total = int(mags.sum())
    t = 2 * np.arange(total + 1) - total  # (total + 1,) statistic for each y
    return min(1.0, float(dist[np.abs(t) >= abs(int(net.sum()))].sum()))
