"""Student's t quantile without SciPy: the regularised incomplete beta function, inverted.

:func:`t_quantile` gives the critical values of :func:`prompt_learning.stats.mean_ci`. The incomplete
beta function is its continued fraction (modified Lentz; Numerical Recipes, 3rd ed., §6.4).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError


def check_level(level: float, name: str = "level", example: str = "0.95 for a 95% interval") -> None:
    if isinstance(level, bool) or not isinstance(level, (int, float, np.number)) or not 0 < level < 1:
        raise InputError(f"{name} must be a number strictly between 0 and 1, e.g. {example}; got {level!r}")


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta ``I_x(a, b)`` by its continued fraction (modified Lentz)."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below the mean
        return 1.0 - _betainc(b, a, 1.0 - x)

    def nz(v: float) -> float:  # keeps Lentz's divisors away from 0
        return v if abs(v) > 1e-300 else 1e-300

    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    c, d = 1.0, 1.0 / nz(1.0 - (a + b) * x / (a + 1))
    h = d
    for m in range(1, 3000):  # O(√max(a, b)) terms
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 / nz(1.0 + num * d)
            c = nz(1.0 + num / c)
            h *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * h / a


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom.

    For ``t > 0``, ``P(T > t) = I_x(df/2, 1/2) / 2`` with ``x = df / (df + t²)``; ``x`` is found by
    bisection, so any ``df > 0`` works (not only a table's).

    >>> round(t_quantile(0.975, 4), 4), round(t_quantile(0.975, 1), 3)
    (2.7764, 12.706)
    """
    check_level(q, "q", "0.975 for a two-sided 95% interval")
    if isinstance(df, bool) or not isinstance(df, (int, float, np.number)) or not df > 0:
        raise InputError(
            f"df must be a positive number of degrees of freedom (n − 1 for n values); got {df!r}"
        )
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    target, lo, hi = 2.0 * (1.0 - q), 0.0, 1.0  # solve I_x(df/2, 1/2) = target; increasing in x
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if _betainc(df / 2, 0.5, mid) < target else (lo, mid)
    x = (lo + hi) / 2
    return math.sqrt(df * (1.0 - x) / x)
