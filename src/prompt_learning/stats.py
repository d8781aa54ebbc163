"""Intervals and paired tests for comparing few-shot methods on the same test items.

A few-shot result is a few hundred test items, so the book states a difference between two
methods only when a test supports it. Everything here takes *per-item outcomes*: a 0/1 (or bool)
array with one entry per test item, ``1`` where the method was right.

- :func:`accuracy_ci`: one method's accuracy with the Wilson score interval (Wilson 1927);
- :func:`mean_ci`: the mean of a few per-seed accuracies with a Student t interval;
- :func:`paired`: two methods on the same items; difference, exact McNemar p-value (McNemar 1947)
  and a paired-bootstrap percentile interval (Efron & Tibshirani 1993);
- :func:`paired_over_seeds`: the same over several training seeds, outcomes of shape ``(S, N)``;
- :func:`verdict`: the sentence the book prints, e.g.
  ``"PET ahead of ICL by 4.1 points (95% CI 1.2–7.0, p = 0.006, n = 1,000 × 5 seeds)"``.

Numpy and the standard library only: the normal quantile is ``statistics.NormalDist``, the
t quantile is :func:`prompt_learning.quantiles.t_quantile`, the exact tests' null distributions
are in :mod:`prompt_learning.exact_tests`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from .errors import InputError
from .exact_tests import check_count, mcnemar_p, sign_flip_p
from .quantiles import check_level, t_quantile

CHUNK_CELLS = 1 << 21  # bootstrap draws held at once (resamples × items): ~16 MB per int64 array


# formatting --------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    """``0.8234 → "82.3"``, ``-0.021 → "−2.1"`` (a real minus sign, never ``"-0.0"``)."""
    s = f"{abs(x) * 100:.1f}"
    return "−" + s if x < 0 and float(s) != 0 else s


def _range(low: float, high: float) -> str:
    """``"79.8–84.6"``; ``"−2.1 to 3.7"`` when a minus sign would sit next to the dash."""
    lo, hi = _pct(low), _pct(high)
    return f"{lo} to {hi}" if "−" in lo + hi else f"{lo}–{hi}"


def _level(level: float) -> str:
    return f"{round(level * 100, 6):g}%"


def _p(p: float) -> str:
    """``"p < 0.001"``, ``"p = 0.006"``, ``"p = 0.039"``, ``"p = 0.61"``, ``"p = 1"``."""
    if p < 0.001:
        return "p < 0.001"
    s = f"{p:.3f}" if p < 0.1 else f"{p:.2f}"
    return f"p = {'1' if s == '1.00' else s}"


def _n(n: int, seeds: int) -> str:
    return f"n = {n:,}" + (f" × {seeds} seeds" if seeds > 1 else "")


# results -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """An accuracy (or a mean of accuracies) with its confidence interval, as fractions in [0, 1].

    >>> e = accuracy_ci([1] * 81 + [0] * 19)
    >>> print(e), round(e.pm, 4)  # pm: half the width, for "81.0 ± 7.6" tables
    81.0% (95% CI 72.2–87.5, n = 100)
    (None, 0.0763)
    """

    value: float  # point estimate: fraction correct, or the mean of per-seed accuracies
    low: float  # lower end of the interval
    high: float  # upper end of the interval
    n: int  # test items (accuracy_ci) or values averaged (mean_ci)
    level: float  # confidence level, e.g. 0.95

    @property
    def pm(self) -> float:
        """Half the interval's width (the Wilson interval is not symmetric about ``value``)."""
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        return f"{_pct(self.value)}% ({_level(self.level)} CI {_range(self.low, self.high)}, n = {self.n:,})"


@dataclass(frozen=True)
class Comparison:
    """Method a against method b on the same test items; differences are a − b, as fractions."""

    diff: float  # accuracy(a) − accuracy(b), averaged over seeds
    low: float  # lower end of the bootstrap interval of diff
    high: float  # upper end of the bootstrap interval of diff
    p_value: float  # two-sided: exact McNemar (one seed), exact item sign-flip (several seeds)
    n: int  # test items (each seed is scored on all of them)
    a_only: int  # (seed, item) pairs a got right and b got wrong, summed over seeds
    b_only: int  # (seed, item) pairs b got right and a got wrong, summed over seeds
    level: float  # confidence level of [low, high]
    seeds: int = 1  # training seeds pooled

    @property
    def pm(self) -> float:
        """Half the interval's width."""
        return (self.high - self.low) / 2

    def winner(self, name_a: str, name_b: str, alpha: float = 0.05) -> str | None:
        """The name of the better method when :func:`is_significant`, else ``None``."""
        if not is_significant(self, alpha) or self.diff == 0:
            return None
        return name_a if self.diff > 0 else name_b

    def __str__(self) -> str:
        sign = "+" if self.diff > 0 and _pct(self.diff) != "0.0" else ""
        return (
            f"a − b = {sign}{_pct(self.diff)} points ({_level(self.level)} CI "
            f"{_range(self.low, self.high)}, {_p(self.p_value)}, {_n(self.n, self.seeds)})"
        )


# checks ------------------------------------------------------------------------------------------
def _outcomes(x: npt.ArrayLike, name: str) -> np.ndarray:
    """``x`` as a bool array ``(N,)``, or a ValueError that says what to pass instead."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise InputError(
            f"{name} must be 1-D, one 0/1 outcome per test item; got shape {arr.shape} "
            "(for several seeds use paired_over_seeds or mean_ci)"
        )
    if arr.size == 0:
        raise InputError(f"{name} is empty; pass one 0/1 outcome per test item")
    if arr.dtype == bool:
        return arr
    bad = ~np.isin(arr, (0, 1)) if arr.dtype.kind in "iuf" else np.ones(arr.shape, bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{name} must hold only 0/1 or True/False (1 = correct); got {arr[i].item()!r} at "
            f"index {i}: pass per-item correctness such as preds == labels"
        )
    return arr.astype(bool)


def _runs(runs: Sequence[npt.ArrayLike], name: str) -> np.ndarray:
    """``runs`` (one outcome array per seed) as a bool array ``(S, N)``."""
    rows = list(runs) if np.iterable(runs) else [runs]
    if not rows:
        raise InputError(f"{name} is empty; pass one per-item outcome array per seed")
    if any(np.ndim(r) != 1 for r in rows):
        raise InputError(
            f"{name} must be a list of 1-D outcome arrays, one per seed (shape (S, N)); "
            "for a single run pass [run] or call paired()"
        )
    rows = [_outcomes(r, f"{name}[{s}]") for s, r in enumerate(rows)]
    for s, r in enumerate(rows):
        if r.size != rows[0].size:
            raise InputError(
                f"{name}[{s}] has {r.size:,} items but {name}[0] has {rows[0].size:,}; "
                "every seed must be scored on the same test items"
            )
    return np.stack(rows)  # (S, N)


# one method --------------------------------------------------------------------------------------
def accuracy_ci(correct: npt.ArrayLike, level: float = 0.95) -> Estimate:
    """Accuracy of per-item outcomes ``correct (N,)`` with the Wilson score interval.

    Wilson's interval keeps its coverage near 0% and 100% and for small ``N``, where the
    ``p ± z √(p(1−p)/N)`` interval does not.

    >>> print(accuracy_ci([True] * 823 + [False] * 177))
    82.3% (95% CI 79.8–84.5, n = 1,000)
    """
    check_level(level)
    x = _outcomes(correct, "correct")
    n, p = x.size, float(x.mean())
    z = NormalDist().inv_cdf((1 + level) / 2)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if p == 0 else centre - half  # exact ends at 0% and 100%, not rounding noise
    return Estimate(p, low, 1.0 if p == 1 else centre + half, n, level)


def mean_ci(values: npt.ArrayLike, level: float = 0.95) -> Estimate:
    """Mean of a few per-seed accuracies ``values (S,)`` with a Student t interval, clipped to [0, 1].

    >>> print(mean_ci([0.80, 0.82, 0.84, 0.81, 0.83]))  # 82 ± t(0.975, 4) · s / √5
    82.0% (95% CI 80.0–84.0, n = 5)
    """
    check_level(level)
    v = np.asarray(values)
    if v.ndim != 1 or v.size == 0 or v.dtype.kind not in "biuf":
        raise InputError(f"values must be a non-empty 1-D list of accuracies, one per seed; got {values!r}")
    if not np.isfinite(v).all() or v.min() < 0 or v.max() > 1:
        raise InputError(
            f"values must be accuracies as fractions in [0, 1] (0.823, not 82.3); got {values!r}"
        )
    if v.size < 2:
        raise InputError(
            "mean_ci needs at least 2 values (one per seed) to estimate their spread; "
            "for a single run use accuracy_ci on its per-item outcomes"
        )
    n, m = v.size, float(v.mean())
    half = t_quantile((1 + level) / 2, n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
    return Estimate(m, max(0.0, m - half), min(1.0, m + half), n, level)


# two methods -------------------------------------------------------------------------------------
def _bootstrap(diffs: np.ndarray, level: float, resamples: int, seed: int) -> tuple[float, float]:
    """Percentile interval of ``mean(diffs)`` resampling seeds and items ``diffs (S, N)``.

    Each resample draws ``S`` seeds and ``N`` items with replacement; the same item indices serve
    every seed. Items and seeds come from two independent streams of ``seed``, so one seed
    (``S = 1``) gives the item draws of :func:`paired` exactly.
    """
    S, N = diffs.shape
    item_rng, seed_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    stats = np.empty(resamples)  # (R,)
    chunk = max(1, CHUNK_CELLS // N)
    for start in range(0, resamples, chunk):
        r = min(chunk, resamples - start)
        items = item_rng.integers(0, N, size=(r, N))  # (r, N)
        if S == 1:
            per_item = diffs[0][items]  # (r, N)
        else:
            picks = seed_rng.integers(0, S, size=(r, S))  # (r, S)
            counts = (picks[:, :, None] == np.arange(S)).sum(1)  # (r, S) times each seed was drawn
            seed_mean = counts @ diffs / S  # (r, N) item differences averaged over the drawn seeds
            per_item = np.take_along_axis(seed_mean, items, axis=1)  # (r, N)
        stats[start : start + r] = per_item.mean(1)
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _compare(
    a: np.ndarray, b: np.ndarray, p_value: float, level: float, resamples: int, seed: int
) -> Comparison:
    """``a, b (S, N)`` bool → :class:`Comparison` with the given p-value."""
    diffs = a.astype(np.int8) - b.astype(np.int8)  # (S, N) in {-1, 0, 1}
    low, high = _bootstrap(diffs, level, resamples, seed)
    return Comparison(
        diff=float(diffs.mean()),
        low=low,
        high=high,
        p_value=p_value,
        n=a.shape[1],
        a_only=int((a & ~b).sum()),
        b_only=int((~a & b).sum()),
        level=level,
        seeds=a.shape[0],
    )


def paired(
    correct_a: npt.ArrayLike,
    correct_b: npt.ArrayLike,
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Methods a and b on the same test items ``correct_a, correct_b (N,)``.

    - ``diff``: accuracy(a) − accuracy(b);
    - ``p_value``: exact two-sided McNemar test,
      :func:`~prompt_learning.exact_tests.mcnemar_p` on the discordant items
      (a right and b wrong, and the reverse); the items both got right or wrong carry no evidence;
    - ``[low, high]``: paired-bootstrap percentile interval; ``resamples`` draws of ``N`` items
      with replacement, the same items for both methods, from ``numpy.random.default_rng``
      seeded by ``seed`` (same inputs and seed, same interval).

    >>> c = paired([1] * 60 + [0] * 40, [1] * 45 + [0] * 55)
    >>> print(verdict(c, "PET", "ICL"))
    PET ahead of ICL by 15.0 points (95% CI 8.0–22.0, p < 0.001, n = 100)
    """
    check_level(level)
    check_count(resamples, "resamples", "a number of bootstrap resamples such as 10_000", least=1)
    a, b = _outcomes(correct_a, "correct_a"), _outcomes(correct_b, "correct_b")
    if a.size != b.size:
        raise InputError(
            f"correct_a has {a.size:,} items but correct_b has {b.size:,}; a paired comparison "
            "needs both methods scored on the same test items, in the same order"
        )
    p = mcnemar_p(int((a & ~b).sum()), int((~a & b).sum()))
    return _compare(a[None], b[None], p, level, resamples, seed)


def paired_over_seeds(
    runs_a: Sequence[npt.ArrayLike],
    runs_b: Sequence[npt.ArrayLike],
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Methods a and b over ``S`` training seeds on the same ``N`` test items, runs ``(S, N)``.

    Run ``s`` of a is paired with run ``s`` of b. The ``S × N`` outcomes are not independent
    (every seed sees the same items), so McNemar on them pooled would overstate the evidence.

    - ``diff``: the mean over seeds of accuracy(a_s) − accuracy(b_s);
    - ``[low, high]``: bootstrap percentile interval; each of ``resamples`` draws takes ``S`` seeds
      with replacement and ``N`` items with replacement, the same items for every drawn seed and
      for both methods, and averages the differences; so it reflects both seed-to-seed and
      item-to-item variation;
    - ``p_value``: exact two-sided sign-flip test. Per item, ``d_i = Σ_s (a_si − b_si)``; under the
      null that a's and b's outcomes on an item are exchangeable, each ``d_i`` is as likely to be
      ``−d_i``, and ``p = P(|Σ_i ± d_i| ≥ |Σ_i d_i|)`` over all ``2^N`` sign patterns, computed
      exactly (not by sampling) as a convolution of binomials. It conditions on the seeds that were
      run; their variation enters through the interval, which is why :func:`is_significant` asks
      for both. With one seed ``d_i ∈ {−1, 0, 1}`` and this is exactly McNemar's test, so the
      result equals :func:`paired`'s.

    ``a_only`` and ``b_only`` count discordant (seed, item) pairs summed over seeds.
    """
    check_level(level)
    check_count(resamples, "resamples", "a number of bootstrap resamples such as 10_000", least=1)
    a, b = _runs(runs_a, "runs_a"), _runs(runs_b, "runs_b")
    if a.shape[0] != b.shape[0]:
        raise InputError(
            f"runs_a has {a.shape[0]} seeds but runs_b has {b.shape[0]}; run s of a is paired "
            "with run s of b, so pass the same number of runs for both"
        )
    if a.shape[1] != b.shape[1]:
        raise InputError(
            f"runs_a has {a.shape[1]:,} items per seed but runs_b has {b.shape[1]:,}; both "
            "methods must be scored on the same test items, in the same order"
        )
    net = a.sum(0, dtype=np.int64) - b.sum(0, dtype=np.int64)  # (N,) Σ_s (a_si − b_si)
    return _compare(a, b, sign_flip_p(net), level, resamples, seed)


# wording -----------------------------------------------------------------------------------------


def paired_scores(
    scores_a: npt.ArrayLike,
    scores_b: npt.ArrayLike,
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Methods a and b on the same test items, scored per item on a continuous scale in [0, 1]
    (ROUGE F1, say) rather than right or wrong: ``scores_a, scores_b (N,)``.

    - ``diff``: mean(a) − mean(b), so :func:`verdict` reads it in points of the score × 100;
    - ``[low, high]``: paired-bootstrap percentile interval of the mean difference, the items drawn
      as in :func:`paired`;
    - ``p_value``: two-sided sign-flip test of the per-item differences ``d_i = a_i − b_i``: under
      the null that a's and b's scores on an item are exchangeable, each ``d_i`` is as likely to be
      ``−d_i``; ``p = (1 + #{|Σ ± d_i| ≥ |Σ d_i|}) / (1 + resamples)`` over ``resamples`` random
      sign patterns (never 0, so it stays a valid p-value);
    - ``a_only`` / ``b_only``: items where a scored higher / lower than b.

    >>> c = paired_scores([0.3] * 20, [0.2] * 20)
    >>> print(verdict(c, "prefix tuning", "prompt tuning"))
    prefix tuning ahead of prompt tuning by 10.0 points (95% CI 10.0–10.0, p < 0.001, n = 20)
    """
    check_level(level)
    check_count(resamples, "resamples", "a number of random sign patterns such as 10_000", least=1)
    a, b = (np.asarray(x, dtype=float).ravel() for x in (scores_a, scores_b))
    if a.size != b.size or a.size == 0:
        raise InputError(
            f"scores_a has {a.size:,} items and scores_b {b.size:,}; a paired comparison needs "
            "both methods scored on the same (non-empty) test items, in the same order"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError("the scores contain NaN or infinity; score every item before comparing")
    d = a - b  # (N,)
    low, high = _bootstrap(d[None], level, resamples, seed)
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(resamples, d.size))  # (R, N)
    as_extreme = int((np.abs(signs @ d) >= abs(d.sum()) - 1e-12).sum())
    p = (1 + as_extreme) / (1 + resamples) if np.any(d != 0) else 1.0
    return Comparison(
        diff=float(d.mean()),
        low=low,
        high=high,
        p_value=p,
        n=d.size,
        a_only=int((d > 0).sum()),
        b_only=int((d < 0).sum()),
        level=level,
    )


def is_significant(comparison: Comparison, alpha: float = 0.05) -> bool:
    """True when the interval excludes 0 *and* ``p < alpha``."""
    check_level(alpha, "alpha", "0.05")
    return comparison.p_value < alpha and (comparison.low > 0 or comparison.high < 0)


def verdict(comparison: Comparison, name_a: str, name_b: str, alpha: float = 0.05) -> str:
    """The sentence for the book: who is ahead, or that this test cannot tell them apart.

    >>> c = Comparison(0.041, 0.012, 0.070, 0.006, n=1000, a_only=90, b_only=49, level=0.95, seeds=5)
    >>> verdict(c, "PET", "ICL")
    'PET ahead of ICL by 4.1 points (95% CI 1.2–7.0, p = 0.006, n = 1,000 × 5 seeds)'
    >>> print(verdict(Comparison(0.008, -0.021, 0.037, 0.61, 1000, 30, 22, 0.95), "PET", "ICL"))
    ... # doctest: +NORMALIZE_WHITESPACE
    no difference this test can detect between PET and ICL
    (PET − ICL = 0.8 points, 95% CI −2.1 to 3.7, p = 0.61, n = 1,000)
    """
    c = comparison
    tail = f"{_p(c.p_value)}, {_n(c.n, c.seeds)}"
    ci = f"{_level(c.level)} CI"
    if c.winner(name_a, name_b, alpha) is None:
        return (
            f"no difference this test can detect between {name_a} and {name_b} ({name_a} − {name_b} = "
            f"{_pct(c.diff)} points, {ci} {_range(c.low, c.high)}, {tail})"
        )
    if c.diff > 0:
        return f"{name_a} ahead of {name_b} by {_pct(c.diff)} points ({ci} {_range(c.low, c.high)}, {tail})"
    return f"{name_b} ahead of {name_a} by {_pct(-c.diff)} points ({ci} {_range(-c.high, -c.low)}, {tail})"
