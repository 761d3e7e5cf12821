"""gate.stats: Tango's score test checked against a published example and a brute-force computation, the
Wald and cluster-robust tests against scipy and by coverage, Holm against closed testing, planning against
the design document, and the error rates by seeded Monte-Carlo on paired binary data and by exact
enumeration of every paired table."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from gate.stats import (
    PairedEstimate,
    certifiable_budget,
    detectable_regression,
    effective_discordance,
    holm_adjust,
    holm_levels,
    is_binary,
    paired_differences,
    paired_wald,
    required_items,
    tango_bound,
    tango_p_below,
    tango_required_items,
    tango_statistic,
    unit_labels,
)

SEED = 20240611
Z95 = float(stats.norm.isf(0.05))


@st.composite
def paired_counts(draw: st.DrawFn, max_n: int = 400) -> tuple[int, int, int]:
    """(n_up, n_down, n) of a paired 0/1 table with n >= 1."""
    n = draw(st.integers(1, max_n))
    n_up = draw(st.integers(0, n))
    n_down = draw(st.integers(0, n - n_up))
    return n_up, n_down, n


def discordant_counts(
    rng: np.random.Generator, n: int, delta: float, discordance: float, reps: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n_up, n_down) per replication: n items with P(d = +1) = (r + delta)/2, P(d = -1) = (r - delta)/2."""
    draws = rng.multinomial(
        n, [(discordance + delta) / 2, (discordance - delta) / 2, 1 - discordance], size=reps
    )
    return draws[:, 0], draws[:, 1]


# --- inputs -----------------------------------------------------------------------------------------------


def test_paired_differences_is_ckpt_minus_base() -> None:
    np.testing.assert_allclose(paired_differences([1, 0, 0.5], [0, 1, 0.75]), [-1.0, 1.0, 0.25])


@pytest.mark.parametrize(
    ("base", "ckpt", "message"),
    [
        ([], [], "no items"),
        ([1, 0], [1], "same items"),
        ([1, 2], [1, 0], r"\[0, 1\]"),
        ([1, np.nan], [1, 0], r"\[0, 1\]"),
        ([[1, 0]], [[1, 0]], "1-D"),
    ],
)
def test_paired_differences_rejects_bad_input(base: list[float], ckpt: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_differences(base, ckpt)


def test_is_binary() -> None:
    assert is_binary(np.array([0.0, 1.0, 1.0]))
    assert not is_binary(np.array([0.0, 0.5]))


# --- Tango ------------------------------------------------------------------------------------------------


def test_tango_matches_published_example() -> None:
    """Cavo et al. (2012) as analysed by Fagerland, Lydersen & Laake (R package contingencytables):
    n12 = 6, n21 = 16, N = 161, estimate -0.0621, Tango 95% CI -0.1240 to -0.0054 (2.5% per side)."""
    assert tango_bound(6, 16, 161, 0.025, "lower") == pytest.approx(-0.1240, abs=5e-5)
    assert tango_bound(6, 16, 161, 0.025, "upper") == pytest.approx(-0.0054, abs=5e-5)


@given(paired_counts())
def test_tango_statistic_at_zero_is_mcnemar(counts: tuple[int, int, int]) -> None:
    n_up, n_down, n = counts
    discordant = n_up + n_down
    expected = (n_up - n_down) / math.sqrt(discordant) if discordant else 0.0
    assert float(tango_statistic(n_up, n_down, n, 0.0)) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def _brute_force_statistic(n_up: int, n_down: int, n: int, delta0: float) -> float:
    """Score statistic with the restricted MLE found by maximising the multinomial likelihood numerically."""
    n_same = n - n_up - n_down
    low, high = max(0.0, -delta0), (1.0 - delta0) / 2.0

    def negative_loglik(q: float) -> float:
        cells = np.array([q + delta0, q, 1.0 - 2.0 * q - delta0])
        weights = np.array([n_up, n_down, n_same], dtype=float)
        used = weights > 0
        return -float(np.sum(weights[used] * np.log(np.maximum(cells[used], 1e-300))))

    q = optimize.minimize_scalar(
        negative_loglik, bounds=(low, high), method="bounded", options={"xatol": 1e-13}
    ).x
    variance = n * (2.0 * q + delta0 - delta0**2)
    return (n_up - n_down - n * delta0) / math.sqrt(variance)


def _brute_force_bounds(n_up: int, n_down: int, n: int, z_crit: float) -> tuple[float, float]:
    """Invert the brute-force statistic on a coarse grid of delta0, then on a fine grid at each edge."""
    coarse = np.linspace(-1 + 1e-4, 1 - 1e-4, 401)
    z = np.array([_brute_force_statistic(n_up, n_down, n, d) for d in coarse])
    inside = np.flatnonzero(np.abs(z) <= z_crit)
    first, last = inside[0], inside[-1]
    fine = np.linspace(coarse[first - 1], coarse[first], 201)
    lower = fine[np.array([_brute_force_statistic(n_up, n_down, n, d) for d in fine]) <= z_crit][0]
    fine = np.linspace(coarse[last], coarse[last + 1], 201)
    upper = fine[np.array([_brute_force_statistic(n_up, n_down, n, d) for d in fine]) >= -z_crit][-1]
    return float(lower), float(upper)


@pytest.mark.parametrize(
    ("n_up", "n_down", "n"), [(6, 16, 161), (3, 0, 20), (40, 20, 160), (2, 9, 11), (1, 7, 20)]
)
def test_tango_matches_brute_force(n_up: int, n_down: int, n: int) -> None:
    """Independent check: restricted MLE by numerical maximisation, bounds by grid inversion."""
    grid = np.linspace(-0.99, 0.99, 45)
    brute = np.array([_brute_force_statistic(n_up, n_down, n, d) for d in grid])
    np.testing.assert_allclose(tango_statistic(n_up, n_down, n, grid), brute, rtol=1e-5)
    lower, upper = _brute_force_bounds(n_up, n_down, n, Z95)
    assert tango_bound(n_up, n_down, n, 0.05, "lower") == pytest.approx(lower, abs=3e-5)
    assert tango_bound(n_up, n_down, n, 0.05, "upper") == pytest.approx(upper, abs=3e-5)


@pytest.mark.parametrize("n", [1, 10, 1000])
def test_identical_scores_give_finite_wilson_bounds(n: int) -> None:
    """No discordant item: the bounds are Wilson's for 0 events in n, -+z^2/(n + z^2); p is finite."""
    wilson = Z95**2 / (n + Z95**2)
    assert tango_bound(0, 0, n, 0.05, "lower") == pytest.approx(-wilson, rel=1e-6)
    assert tango_bound(0, 0, n, 0.05, "upper") == pytest.approx(wilson, rel=1e-6)
    p = float(tango_p_below(0, 0, n, -0.03))
    assert 0.5 < p <= 1.0
    assert float(tango_statistic(0, 0, n, 0.0)) == 0.0


@pytest.mark.parametrize(("n_up", "n_down", "n"), [(5, 0, 5), (0, 5, 5), (0, 0, 5), (1, 0, 1)])
def test_tango_extreme_tables(n_up: int, n_down: int, n: int) -> None:
    lower = tango_bound(n_up, n_down, n, 0.05, "lower")
    upper = tango_bound(n_up, n_down, n, 0.05, "upper")
    assert -1.0 <= lower <= (n_up - n_down) / n <= upper <= 1.0
    assert np.all(np.isfinite(tango_p_below(n_up, n_down, n, np.array([-0.5, -0.03, 0.03]))))


@given(paired_counts(), st.floats(0.001, 0.2))
@settings(max_examples=60, deadline=None)
def test_tango_bounds_are_ordered_and_symmetric(counts: tuple[int, int, int], alpha: float) -> None:
    n_up, n_down, n = counts
    lower = tango_bound(n_up, n_down, n, alpha, "lower")
    upper = tango_bound(n_up, n_down, n, alpha, "upper")
    assert -1.0 <= lower <= (n_up - n_down) / n <= upper <= 1.0
    # Swapping base and checkpoint mirrors the interval.
    assert tango_bound(n_down, n_up, n, alpha, "upper") == pytest.approx(-lower, abs=1e-9)


@given(paired_counts())
@settings(max_examples=60, deadline=None)
def test_tango_statistic_decreases_in_delta0(counts: tuple[int, int, int]) -> None:
    grid = np.linspace(-0.999, 0.999, 999)
    z = tango_statistic(*counts, grid)
    assert np.all(np.diff(z) <= 1e-12)


@given(paired_counts(), st.floats(-0.6, -0.005), st.floats(0.0005, 0.2))
@settings(max_examples=80, deadline=None)
def test_tango_p_value_and_upper_bound_agree(
    counts: tuple[int, int, int], delta0: float, alpha: float
) -> None:
    """The test is the inverted interval: p_below(delta0) < alpha exactly when upper < delta0."""
    upper = tango_bound(*counts, alpha, "upper")
    if abs(upper - delta0) > 1e-8:
        assert (float(tango_p_below(*counts, delta0)) < alpha) == (upper < delta0)


# --- Wald, clusters ---------------------------------------------------------------------------------------


def test_wald_matches_scipy_paired_t() -> None:
    rng = np.random.default_rng(SEED)
    base, ckpt = rng.random(60), rng.random(60)
    d = ckpt - base
    estimate = paired_wald(d)
    reference = stats.ttest_1samp(d, popmean=-0.03, alternative="less")
    assert estimate.p_below(-0.03) == pytest.approx(reference.pvalue, rel=1e-10)
    assert estimate.bound(0.05, "upper") == pytest.approx(reference.confidence_interval(0.95).high, rel=1e-10)
    assert estimate.df == 59


def test_wald_zero_spread_does_not_divide_by_zero() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = paired_wald(np.zeros(5))
        assert same.se == 0.0
        assert same.p_below(-0.03) == 1.0
        assert same.bound(0.05, "lower") == same.bound(0.05, "upper") == 0.0
        dropped = paired_wald(np.full(5, -0.05))
        assert dropped.p_below(-0.03) == 0.0


def test_wald_single_unit_knows_nothing_about_spread() -> None:
    one = paired_wald(np.array([-0.5]))
    assert one.se == math.inf
    assert one.p_below(-0.03) == 0.5
    assert (one.bound(0.05, "lower"), one.bound(0.05, "upper")) == (-1.0, 1.0)


def test_singleton_clusters_equal_items() -> None:
    rng = np.random.default_rng(SEED)
    d = rng.random(40) - rng.random(40)
    by_cluster = paired_wald(d, np.array([f"item{i}" for i in range(40)]))
    by_item = paired_wald(d)
    assert (by_cluster.delta, by_cluster.df) == (by_item.delta, by_item.df)
    assert by_cluster.se == pytest.approx(by_item.se, rel=1e-12)
    assert effective_discordance(d, np.arange(40)) == pytest.approx(effective_discordance(d))


def test_effective_discordance_of_binary_scores_is_the_discordance() -> None:
    d = np.array([1.0, -1.0, 0.0, 0.0, 1.0])
    assert effective_discordance(d) == pytest.approx(0.6)


def test_cluster_labels_must_cover_every_item() -> None:
    with pytest.raises(ValueError, match="one id per item"):
        unit_labels(3, np.array([1, 2]))
    with pytest.raises(ValueError, match="non-empty"):
        paired_wald(np.array([]))


def test_cluster_robust_bound_keeps_coverage_where_items_do_not() -> None:
    """Items sharing a passage move together: the item-level t bound under-covers, the clustered one holds."""
    rng = np.random.default_rng(SEED)
    reps, clusters, size = 1000, 60, 5
    labels = np.repeat(np.arange(clusters), size)
    shared = rng.normal(0.0, 0.2, size=(reps, clusters)).repeat(size, axis=1)
    d = shared + rng.normal(0.0, 0.1, size=(reps, clusters * size))  # true Delta = 0
    clustered = np.mean([paired_wald(row, labels).bound(0.05, "upper") >= 0.0 for row in d])
    naive = np.mean([paired_wald(row).bound(0.05, "upper") >= 0.0 for row in d])
    assert clustered >= 0.93
    assert naive < 0.85


# --- Holm ---------------------------------------------------------------------------------------------------


def test_holm_worked_example() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(holm_adjust(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm_levels(p, 0.05), [0.05 / 3, 0.05 / 2, 0.05 / 2, 0.05 / 4])


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6), st.sampled_from([0.01, 0.05]))
def test_holm_equals_closed_testing_with_bonferroni(p: list[float], alpha: float) -> None:
    """Holm is the shortcut of closed testing: H_i falls iff every intersection containing it has
    min_J p <= alpha / |J|; its adjusted p-value is the largest |J| * min_J p over those J."""
    m = len(p)
    adjusted = holm_adjust(p)
    levels = holm_levels(p, alpha)
    for i in range(m):
        brute = max(
            min(1.0, len(subset) * min(p[j] for j in subset))
            for size in range(1, m + 1)
            for subset in itertools.combinations(range(m), size)
            if i in subset
        )
        assert adjusted[i] == pytest.approx(brute, abs=1e-12)
        assert (p[i] < levels[i]) == (adjusted[i] < alpha)


# --- planning ---------------------------------------------------------------------------------------------


def test_planning_reproduces_the_design_numbers() -> None:
    """docs/statistics.md: 1,203 items at r = 0.1, B = 3; 433 at B = 5; ~2.3 points certifiable at 2,000 items."""
    assert required_items(3.0, 0.1, 0.05, 0.95) == 1203
    assert required_items(5.0, 0.1, 0.05, 0.95) == 433
    assert certifiable_budget(2000, 0.1, 0.05, 0.95) == pytest.approx(2.33, abs=0.01)


@given(st.floats(0.5, 10.0), st.floats(0.01, 0.5), st.sampled_from([0.01, 0.05]), st.floats(0.6, 0.99))
def test_planning_functions_invert_each_other(budget: float, r: float, alpha: float, power: float) -> None:
    n = required_items(budget, r, alpha, power)
    assert certifiable_budget(n, r, alpha, power) <= budget + 1e-9
    if n > 1:
        assert certifiable_budget(n - 1, r, alpha, power) > budget
    assert detectable_regression(n, r, alpha, power, budget) == pytest.approx(
        budget + certifiable_budget(n, r, alpha, power)
    )


@given(st.floats(0.5, 10.0), st.floats(0.0, 0.5))
def test_tango_plan_approaches_the_first_order_plan_for_small_budgets(budget: float, r: float) -> None:
    first_order = required_items(budget, r, 0.05, 0.95)
    if budget / 100 <= r / 20:
        assert abs(tango_required_items(budget, r, 0.05, 0.95) - first_order) <= 0.02 * first_order + 1


def test_tango_plan_grows_where_the_first_order_plan_falls_short() -> None:
    assert (required_items(3.0, 0.1, 0.05, 0.95), tango_required_items(3.0, 0.1, 0.05, 0.95)) == (1203, 1243)
    assert (required_items(3.0, 0.05, 0.05, 0.95), tango_required_items(3.0, 0.05, 0.05, 0.95)) == (602, 675)


@pytest.mark.parametrize("budget", [1.0, 3.0, 5.0])
def test_tango_plan_for_identical_models_is_where_the_wilson_bound_clears_the_budget(budget: float) -> None:
    n = tango_required_items(budget, 0.0, 0.05, 0.95)
    assert tango_bound(0, 0, n, 0.05, "lower") > -budget / 100 >= tango_bound(0, 0, n - 1, 0.05, "lower")


@pytest.mark.parametrize(
    "call",
    [
        lambda: required_items(0.0, 0.1, 0.05, 0.8),
        lambda: required_items(3.0, -0.1, 0.05, 0.8),
        lambda: required_items(3.0, 0.1, 0.7, 0.8),
        lambda: required_items(3.0, 0.1, 0.05, 1.0),
        lambda: certifiable_budget(0, 0.1, 0.05, 0.8),
        lambda: tango_required_items(100.0, 0.1, 0.05, 0.8),
        lambda: tango_required_items(3.0, 1.5, 0.05, 0.8),
        lambda: tango_bound(0, 0, 0, 0.05, "lower"),
        lambda: PairedEstimate(0.0, 1.0).bound(0.0, "lower"),
    ],
)
def test_bad_arguments_raise(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        call()


# --- Monte-Carlo error rates (vectorised over replications) ----------------------------------------------

REPS = 20_000
ALPHA_FAIL, ALPHA_PASS = 0.01, 0.05
CELLS = [(0.05, 2.0), (0.1, 3.0), (0.2, 3.0)]  # (discordance r, budget B in points); -2B must be <= r


@pytest.mark.parametrize(("r", "budget"), CELLS)
def test_false_fail_at_the_budget_is_at_most_alpha(r: float, budget: float) -> None:
    rng = np.random.default_rng(SEED)
    n = required_items(budget, r, ALPHA_FAIL, 0.9)
    n_up, n_down = discordant_counts(rng, n, -budget / 100, r, REPS)
    fails = int(np.sum(tango_p_below(n_up, n_down, n, -budget / 100) < ALPHA_FAIL))
    assert fails <= stats.binom.ppf(0.999, REPS, ALPHA_FAIL)


@pytest.mark.parametrize(("r", "budget"), CELLS)
def test_fail_power_at_twice_the_budget(r: float, budget: float) -> None:
    rng = np.random.default_rng(SEED)
    n = required_items(budget, r, ALPHA_FAIL, 0.9)
    n_up, n_down = discordant_counts(rng, n, -2 * budget / 100, r, REPS)
    fails = int(np.sum(tango_p_below(n_up, n_down, n, -budget / 100) < ALPHA_FAIL))
    assert stats.binom.cdf(fails, REPS, 0.9) > 0.001


@pytest.mark.parametrize(("r", "budget"), CELLS)
def test_pass_rate_at_zero_with_planned_items(r: float, budget: float) -> None:
    """PASS means the (1 - alpha_pass) lower bound clears -B, i.e. 1 - Phi(Z(-B)) < alpha_pass."""
    rng = np.random.default_rng(SEED)
    n = tango_required_items(budget, r, ALPHA_PASS, 0.95)
    n_up, n_down = discordant_counts(rng, n, 0.0, r, REPS)
    passes = int(np.sum(1.0 - tango_p_below(n_up, n_down, n, -budget / 100) < ALPHA_PASS))
    assert stats.binom.cdf(passes, REPS, 0.95) > 0.001


# --- exact operating characteristics (enumeration of every (n_up, n_down), no Monte-Carlo noise) ----------


def exact_rate(
    n: int, delta: float, r: float, reject: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> float:
    """P(reject) when n items each differ with probability r and E[d] = delta, summed over all tables."""
    discordant = np.arange(n + 1)
    weight = stats.binom.pmf(discordant, n, r)
    total = 0.0
    for m in discordant[weight > 1e-14]:
        n_down = np.arange(m + 1)
        probability = weight[m] * stats.binom.pmf(n_down, m, (r - delta) / (2 * r))
        total += float(np.sum(probability[reject(m - n_down, n_down)]))
    return total


@pytest.mark.parametrize(
    ("r", "budget", "max_false_fail"),
    [(0.2, 3.0, 0.0101), (0.1, 3.0, 0.0103), (0.05, 1.0, 0.0103), (0.05, 2.0, 0.0107), (0.05, 3.0, 0.0121)],
)
def test_exact_error_rates_at_the_planned_n(r: float, budget: float, max_false_fail: float) -> None:
    """The design targets, computed exactly at n = max(PASS plan, FAIL plan).

    Tango's score test is asymptotic: when few items differ compared with the budget (B/r large) the
    statistic is left-skewed at Delta = -B and the false-FAIL rate creeps above alpha_fail (1.21% at r = 0.05,
    B = 3 points; 1.02% at r = 0.1). The ceilings below pin today's values so any drift shows.
    """
    n = max(tango_required_items(budget, r, ALPHA_PASS, 0.95), required_items(budget, r, ALPHA_FAIL, 0.9))
    margin = budget / 100

    def fails(n_up: np.ndarray, n_down: np.ndarray) -> np.ndarray:
        return tango_p_below(n_up, n_down, n, -margin) < ALPHA_FAIL

    def passes(n_up: np.ndarray, n_down: np.ndarray) -> np.ndarray:
        return 1.0 - tango_p_below(n_up, n_down, n, -margin) < ALPHA_PASS

    assert exact_rate(n, -margin, r, fails) <= max_false_fail
    assert exact_rate(n, -margin, r, passes) <= ALPHA_PASS
    assert exact_rate(n, 0.0, r, passes) >= 0.95
    if 2 * margin <= r:
        assert exact_rate(n, -2 * margin, r, fails) >= 0.90


def test_first_order_plan_falls_short_for_tango_when_budget_is_large_relative_to_r() -> None:
    """Why tango_required_items exists: at r = 0.05, B = 3 the first-order n PASSes a benign checkpoint only
    ~93.6% of the time, the Tango plan at least 95%."""

    def passes_at(n: int) -> float:
        return exact_rate(n, 0.0, 0.05, lambda up, down: 1.0 - tango_p_below(up, down, n, -0.03) < ALPHA_PASS)

    assert passes_at(required_items(3.0, 0.05, ALPHA_PASS, 0.95)) < 0.945
    assert passes_at(tango_required_items(3.0, 0.05, ALPHA_PASS, 0.95)) >= 0.95
