"""Statistics for comparing methods: hand-computed values, the paired tests, the sentences, bad input."""

import dataclasses
import itertools
import math
import re
from statistics import NormalDist

import numpy as np
import pytest

from prompt_learning.stats import (
    Comparison,
    Estimate,
    accuracy_ci,
    is_significant,
    mcnemar_p,
    mean_ci,
    paired,
    paired_over_seeds,
    t_quantile,
    paired_scores,
    verdict,
)

R = 2000  # bootstrap resamples in these tests: enough for stable intervals, fast


def outcomes(both: int, a_only: int, b_only: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-item outcomes of a and b with the given 2 × 2 table, items shuffled."""
    a = np.array([1] * both + [1] * a_only + [0] * b_only + [0] * neither, bool)
    b = np.array([1] * both + [0] * a_only + [1] * b_only + [0] * neither, bool)
    order = np.random.default_rng(0).permutation(a.size)
    return a[order], b[order]


def exact_sign_flip_p(net: np.ndarray) -> float:
    """Two-sided sign-flip p-value by listing all 2^N sign patterns (small N only)."""
    observed = abs(net.sum())
    sums = [abs(np.dot(signs, net)) for signs in itertools.product((-1, 1), repeat=net.size)]
    return float(np.mean(np.array(sums) >= observed))


# ------------------------------------------------------------------------- McNemar


def test_mcnemar_10_vs_2_is_the_binomial_tail():
    expected = 2 * (math.comb(12, 0) + math.comb(12, 1) + math.comb(12, 2)) / 2**12  # 158 / 4096
    assert mcnemar_p(10, 2) == pytest.approx(expected, rel=1e-12)
    assert round(mcnemar_p(10, 2), 4) == 0.0386
    assert mcnemar_p(2, 10) == mcnemar_p(10, 2)


@pytest.mark.parametrize("b, c", [(0, 0), (3, 3), (0, 1), (7, 6)])
def test_mcnemar_is_one_without_evidence(b, c):
    assert mcnemar_p(b, c) == 1.0


def test_mcnemar_matches_exact_integers_for_every_small_table():
    for b, c in itertools.product(range(25), repeat=2):
        m = b + c
        exact = 1.0 if m == 0 else min(1.0, 2 * sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2**m)
        assert mcnemar_p(b, c) == pytest.approx(exact, rel=1e-10), (b, c)
    assert 0 < mcnemar_p(3000, 2600) < 1e-6  # large tables neither overflow nor underflow to 0


def test_paired_counts_the_discordant_items():
    a, b = outcomes(both=70, a_only=10, b_only=2, neither=18)
    c = paired(a, b, resamples=R)
    assert (c.a_only, c.b_only, c.n, c.seeds) == (10, 2, 100, 1)
    assert c.diff == pytest.approx(0.08)
    assert c.p_value == pytest.approx(158 / 4096)


# ------------------------------------------------------------------------- one method


def test_wilson_interval_for_81_of_100():
    e = accuracy_ci([1] * 81 + [0] * 19)
    assert (e.value, e.n, e.level) == (0.81, 100, 0.95)
    assert e.low == pytest.approx(0.7222, abs=1e-4)
    assert e.high == pytest.approx(0.8749, abs=1e-4)
    assert e.pm == pytest.approx((0.8749 - 0.7222) / 2, abs=1e-4)
    assert str(e) == "81.0% (95% CI 72.2–87.5, n = 100)"


def test_wilson_interval_stays_inside_0_1_and_narrows_with_lower_level():
    assert accuracy_ci([0] * 10).low == 0.0 and accuracy_ci([0] * 10).high > 0
    assert accuracy_ci([True] * 10).high == 1.0
    wide, narrow = accuracy_ci([1] * 81 + [0] * 19, 0.99), accuracy_ci([1] * 81 + [0] * 19, 0.90)
    assert wide.low < narrow.low < 0.81 < narrow.high < wide.high
    assert str(accuracy_ci([True] * 823 + [False] * 177)) == "82.3% (95% CI 79.8–84.5, n = 1,000)"


def test_t_quantile_known_values():
    assert t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)
    assert t_quantile(0.975, 1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile(0.95, 10) == pytest.approx(1.8125, abs=1e-4)
    assert t_quantile(0.995, 30) == pytest.approx(2.7500, abs=1e-4)
    assert t_quantile(0.025, 4) == pytest.approx(-t_quantile(0.975, 4))
    assert t_quantile(0.5, 3) == 0.0


@pytest.mark.parametrize("q", [0.6, 0.9, 0.95, 0.975, 0.995, 0.9995])
def test_t_quantile_closed_forms_and_normal_limit(q):
    assert t_quantile(q, 1) == pytest.approx(math.tan(math.pi * (q - 0.5)), rel=1e-9)  # Cauchy
    assert t_quantile(q, 2) == pytest.approx((2 * q - 1) / math.sqrt(2 * q * (1 - q)), rel=1e-9)
    assert t_quantile(q, 10_000) == pytest.approx(NormalDist().inv_cdf(q), rel=1e-3)


def test_mean_ci_is_the_student_t_interval():
    e = mean_ci([0.80, 0.82, 0.84, 0.81, 0.83])
    half = 2.776445 * math.sqrt(0.001 / 4) / math.sqrt(5)  # t(0.975, 4) · s / √n
    assert (e.value, e.n) == (pytest.approx(0.82), 5)
    assert (e.low, e.high) == (pytest.approx(0.82 - half, abs=1e-6), pytest.approx(0.82 + half, abs=1e-6))
    assert mean_ci([0.7, 0.7, 0.7]).pm == pytest.approx(0.0)  # no spread, no width
    assert mean_ci([0.99, 1.0]).high == 1.0  # clipped to what an accuracy can be


# ------------------------------------------------------------------------- two methods


def test_bootstrap_interval_contains_the_difference_and_narrows_with_n():
    rng = np.random.default_rng(1)
    widths = []
    for n in (200, 3200):
        a, b = rng.random(n) < 0.75, rng.random(n) < 0.70
        c = paired(a, b, resamples=R)
        assert c.diff == pytest.approx(a.mean() - b.mean())
        assert c.low < c.diff < c.high
        widths.append(c.high - c.low)
    assert widths[1] < widths[0] / 2.5  # 16 × the items: about a quarter of the width


def test_identical_methods_show_no_difference():
    a = np.random.default_rng(2).random(300) < 0.6
    c = paired(a, a.copy(), resamples=R)
    assert (c.diff, c.low, c.high, c.p_value, c.a_only, c.b_only) == (0.0, 0.0, 0.0, 1.0, 0, 0)
    assert not is_significant(c) and c.winner("A", "B") is None
    assert verdict(c, "A", "B") == (
        "no difference this test can detect between A and B "
        "(A − B = 0.0 points, 95% CI 0.0–0.0, p = 1, n = 300)"
    )


def test_a_clear_difference_names_the_winner_either_way_round():
    a, b = outcomes(both=400, a_only=150, b_only=30, neither=420)
    ab, ba = paired(a, b, resamples=R), paired(b, a, resamples=R)
    assert is_significant(ab) and ab.p_value < 1e-15 and ab.low > 0
    assert ab.winner("PET", "ICL") == "PET" and ba.winner("ICL", "PET") == "PET"
    assert verdict(ab, "PET", "ICL").startswith("PET ahead of ICL by 12.0 points (95% CI ")
    assert verdict(ba, "ICL", "PET").startswith("PET ahead of ICL by 12.0 points (95% CI ")
    assert verdict(ab, "PET", "ICL").endswith(", p < 0.001, n = 1,000)")
    assert verdict(ba, "ICL", "PET") == verdict(ab, "PET", "ICL").replace(
        f"{ab.low * 100:.1f}–{ab.high * 100:.1f}", f"{-ba.high * 100:.1f}–{-ba.low * 100:.1f}"
    )


def test_verdict_wording():
    sig = Comparison(0.041, 0.012, 0.070, 0.006, n=1000, a_only=90, b_only=49, level=0.95, seeds=5)
    assert (
        verdict(sig, "A", "B")
        == "A ahead of B by 4.1 points (95% CI 1.2–7.0, p = 0.006, n = 1,000 × 5 seeds)"
    )
    flipped = dataclasses.replace(sig, diff=-0.041, low=-0.070, high=-0.012)
    assert (
        verdict(flipped, "A", "B")
        == "B ahead of A by 4.1 points (95% CI 1.2–7.0, p = 0.006, n = 1,000 × 5 seeds)"
    )
    assert flipped.winner("A", "B") == "B"
    ns = Comparison(0.008, -0.021, 0.037, 0.61, n=1000, a_only=30, b_only=22, level=0.95)
    assert verdict(ns, "A", "B") == (
        "no difference this test can detect between A and B "
        "(A − B = 0.8 points, 95% CI −2.1 to 3.7, p = 0.61, n = 1,000)"
    )
    assert str(ns) == "a − b = +0.8 points (95% CI −2.1 to 3.7, p = 0.61, n = 1,000)"


def test_significance_needs_both_the_interval_and_the_p_value():
    sig = Comparison(0.041, 0.012, 0.070, 0.006, n=1000, a_only=90, b_only=49, level=0.95)
    assert is_significant(sig) and not is_significant(sig, alpha=0.005)
    assert not is_significant(dataclasses.replace(sig, p_value=0.2))  # interval alone is not enough
    assert not is_significant(dataclasses.replace(sig, low=-0.001))  # p alone is not enough
    assert verdict(dataclasses.replace(sig, p_value=0.2), "A", "B").startswith("no difference")


def test_same_seed_same_interval_other_seed_other_draws():
    a, b = outcomes(both=300, a_only=40, b_only=25, neither=135)
    assert paired(a, b, resamples=R, seed=7) == paired(a, b, resamples=R, seed=7)
    assert paired(a, b, resamples=R, seed=7) != paired(a, b, resamples=R, seed=8)
    runs_a, runs_b = [a, np.roll(a, 1)], [b, np.roll(b, 3)]
    assert paired_over_seeds(runs_a, runs_b, resamples=R, seed=7) == paired_over_seeds(
        runs_a, runs_b, resamples=R, seed=7
    )


# ------------------------------------------------------------------------- over seeds


def test_one_seed_pooled_equals_paired():
    a, b = outcomes(both=500, a_only=37, b_only=21, neither=142)
    one, pooled = paired(a, b, resamples=R, seed=3), paired_over_seeds([a], [b], resamples=R, seed=3)
    assert pooled.p_value == pytest.approx(one.p_value, rel=1e-9)  # sign-flip with one seed is McNemar
    assert dataclasses.replace(pooled, p_value=one.p_value) == one  # same draws, same interval


def test_copies_of_one_run_carry_no_extra_evidence():
    a, b = outcomes(both=500, a_only=37, b_only=21, neither=142)
    one, five = paired(a, b, resamples=R), paired_over_seeds([a] * 5, [b] * 5, resamples=R)
    assert (five.diff, five.low, five.high, five.seeds) == (one.diff, one.low, one.high, 5)
    assert five.p_value == pytest.approx(one.p_value, rel=1e-9)
    assert (five.a_only, five.b_only) == (5 * 37, 5 * 21)


def test_pooled_p_value_is_the_exact_sign_flip_test():
    rng = np.random.default_rng(4)
    runs_a, runs_b = rng.random((3, 12)) < 0.7, rng.random((3, 12)) < 0.4  # (S, N)
    net = runs_a.sum(0).astype(int) - runs_b.sum(0)
    c = paired_over_seeds(list(runs_a), list(runs_b), resamples=R)
    assert c.p_value == pytest.approx(exact_sign_flip_p(net), rel=1e-9)
    assert c.diff == pytest.approx(runs_a.mean() - runs_b.mean())
    assert paired_over_seeds(runs_b, runs_a, resamples=R).p_value == pytest.approx(c.p_value)


def test_seed_to_seed_variation_widens_the_pooled_interval():
    rng = np.random.default_rng(5)
    b = rng.random(400) < 0.6

    def a_fixing(shares):  # a = b with a share of b's mistakes fixed, per seed
        wrong = np.flatnonzero(~b)
        runs = []
        for share in shares:
            a = b.copy()
            a[rng.choice(wrong, int(share * wrong.size), replace=False)] = True
            runs.append(a)
        return runs

    steady = paired_over_seeds(a_fixing([0.25] * 4), [b] * 4, resamples=R)
    erratic = paired_over_seeds(a_fixing([0.0, 0.5, 0.0, 0.5]), [b] * 4, resamples=R)
    assert steady.diff == pytest.approx(erratic.diff, abs=0.01)
    assert erratic.high - erratic.low > 2 * (steady.high - steady.low)


# ------------------------------------------------------------------------- bad input

GOOD = [1, 0, 1, 1]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: accuracy_ci([]), "empty"),
        (lambda: accuracy_ci([[1, 0], [0, 1]]), "must be 1-D"),
        (lambda: accuracy_ci([0, 1, 2]), "only 0/1 or True/False.*got 2 at index 2"),
        (lambda: accuracy_ci([0.5, 1.0]), "only 0/1"),
        (lambda: accuracy_ci([1.0, float("nan")]), "only 0/1"),
        (lambda: accuracy_ci(["yes", "no"]), "only 0/1"),
        (lambda: accuracy_ci(GOOD, level=95), "strictly between 0 and 1, e.g. 0.95"),
        (lambda: accuracy_ci(GOOD, level=0), "strictly between 0 and 1"),
        (lambda: accuracy_ci(GOOD, level=1.0), "strictly between 0 and 1"),
        (lambda: paired(GOOD, [1, 0, 1]), "4 items but correct_b has 3.*same test items"),
        (lambda: paired(GOOD, [], resamples=R), "correct_b is empty"),
        (lambda: paired(GOOD, [0, 1, 3, 1]), "correct_b must hold only 0/1"),
        (lambda: paired(GOOD, GOOD, level=-0.5), "level must be"),
        (lambda: paired(GOOD, GOOD, resamples=0), "resamples must be"),
        (lambda: paired(GOOD, GOOD, resamples=2.5), "resamples must be"),
        (lambda: paired_over_seeds([GOOD] * 3, [GOOD] * 2), "3 seeds but runs_b has 2"),
        (lambda: paired_over_seeds([GOOD, [1, 0]], [GOOD] * 2), r"runs_a\[1\] has 2 items.*same test items"),
        (lambda: paired_over_seeds([GOOD] * 2, [[1, 0]] * 2), "4 items per seed but runs_b has 2"),
        (lambda: paired_over_seeds(GOOD, GOOD), "one per seed.*call paired"),
        (lambda: paired_over_seeds([], []), "runs_a is empty"),
        (lambda: paired_over_seeds([GOOD], [[1, 0, 0.5, 1]]), r"runs_b\[0\] must hold only 0/1"),
        (lambda: mean_ci([0.8]), "at least 2 values"),
        (lambda: mean_ci([]), "non-empty"),
        (lambda: mean_ci([82.0, 80.5]), r"fractions in \[0, 1\] \(0.823, not 82.3\)"),
        (lambda: mean_ci([0.8, float("nan")]), "fractions"),
        (lambda: mean_ci([0.8, 0.9], level=1.5), "level must be"),
        (lambda: t_quantile(1.0, 3), "q must be"),
        (lambda: t_quantile(0.975, 0), "df must be a positive"),
        (lambda: mcnemar_p(-1, 3), "a_only must be"),
        (lambda: mcnemar_p(2, 1.5), "b_only must be"),
        (
            lambda: is_significant(Comparison(0.1, 0.05, 0.15, 0.01, 100, 12, 2, 0.95), alpha=0),
            "alpha must be",
        ),
        (
            lambda: verdict(Comparison(0.1, 0.05, 0.15, 0.01, 100, 12, 2, 0.95), "A", "B", alpha=5),
            "e.g. 0.05",
        ),
    ],
)
def test_bad_input_says_how_to_fix_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_input_is_refused_before_any_resampling(monkeypatch):
    from prompt_learning import stats

    def no_bootstrap(*args, **kwargs):
        raise AssertionError("bootstrap ran on bad input")

    monkeypatch.setattr(stats, "_bootstrap", no_bootstrap)
    with pytest.raises(ValueError, match="same test items"):
        paired(GOOD, [1, 0, 1], resamples=10**9)
    with pytest.raises(ValueError, match="seeds"):
        paired_over_seeds([GOOD] * 2, [GOOD], resamples=10**9)


def test_results_are_frozen():
    e = accuracy_ci(GOOD)
    assert isinstance(e, Estimate)
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.value = 1.0  # type: ignore[misc]


# continuous per-item scores (ROUGE) ---------------------------------------------------------------
def test_paired_scores_p_value_matches_the_exact_sign_flip_enumeration():
    """For 12 items every one of the 2^12 sign patterns can be listed: the random patterns must
    give about the same p-value."""
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 1, 12), rng.uniform(0, 1, 12)
    d = a - b
    exact = np.mean(
        [abs(np.dot(signs, d)) >= abs(d.sum()) - 1e-12 for signs in itertools.product([-1, 1], repeat=12)]
    )
    c = paired_scores(a, b, resamples=20_000)
    assert abs(c.p_value - exact) < 0.02
    assert c.diff == pytest.approx(d.mean()) and c.low <= c.diff <= c.high


def test_paired_scores_finds_a_clear_gap_and_no_gap_in_copies():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.1, 0.5, 40)
    ahead = paired_scores(b + 0.2, b)
    assert verdict(ahead, "A", "B").startswith("A ahead of B by 20.0 points")
    same = paired_scores(b, b.copy())
    assert same.p_value == 1.0 and same.diff == 0 and "no difference" in verdict(same, "A", "B")
    noisy = paired_scores(b + rng.normal(0, 0.2, 40), b + rng.normal(0, 0.2, 40))
    assert noisy.low < 0 < noisy.high  # two noisy copies of one method: the interval spans 0


@pytest.mark.parametrize(
    "a, b, message",
    [
        ([0.1, 0.2], [0.1], "same (non-empty) test items"),
        ([], [], "same (non-empty) test items"),
        ([0.1, float("nan")], [0.1, 0.2], "NaN"),
    ],
)
def test_paired_scores_refuses_bad_input(a, b, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        paired_scores(a, b)
