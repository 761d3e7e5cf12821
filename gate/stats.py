"""Paired statistics for the gate: estimates, one-sided bounds and tests, Holm's procedure, planning.

Pure functions on numpy arrays: no model code, no I/O. Differences are ckpt - base on the proportion scale
(a 3-point budget is the margin 0.03), except the planning functions, which speak in points like the users.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special, stats

Side = Literal["lower", "upper"]

# Root brackets stop this far inside [-1, 1] and off the estimate, where the score variance can vanish;
# far below any bound's resolution for fewer than ~1e9 items.
_EDGE = 1e-10


def _check_open_unit(name: str, value: float, upper: float = 1.0) -> None:
    if not 0.0 < value < upper:
        raise ValueError(f"{name} must lie strictly between 0 and {upper}, got {value!r}")


def paired_differences(base: ArrayLike, ckpt: ArrayLike) -> NDArray[np.float64]:
    """Per-item differences ckpt - base; ValueError unless both are equal-length 1-D scores in [0, 1]."""
    base_arr = np.asarray(base, dtype=np.float64)
    ckpt_arr = np.asarray(ckpt, dtype=np.float64)
    if base_arr.ndim != 1 or ckpt_arr.ndim != 1:
        raise ValueError("base and ckpt must be 1-D arrays of per-item scores")
    if base_arr.size != ckpt_arr.size:
        raise ValueError(
            f"base has {base_arr.size} scores but ckpt has {ckpt_arr.size}: both must score the same items "
            "in the same order"
        )
    if base_arr.size == 0:
        raise ValueError("no items: a task needs at least one scored item")
    for label, scores in (("base", base_arr), ("ckpt", ckpt_arr)):
        if not (np.all(np.isfinite(scores)) and scores.min() >= 0.0 and scores.max() <= 1.0):
            raise ValueError(f"{label} scores must be finite and lie in [0, 1]")
    return ckpt_arr - base_arr


def is_binary(scores: ArrayLike) -> bool:
    """True when every score is exactly 0 or 1."""
    arr = np.asarray(scores)
    return bool(np.all((arr == 0) | (arr == 1)))


def _tango_null_variance(
    up: NDArray[np.float64], down: NDArray[np.float64], total: NDArray[np.float64], delta: NDArray[np.float64]
) -> NDArray[np.float64]:
    """n * Var(d) under the maximum-likelihood cell probabilities restricted to Delta = delta (Tango 1998)."""
    quad_a = 2.0 * total
    quad_b = -up - down + (2.0 * total - up + down) * delta
    quad_c = -down * delta * (1.0 - delta)
    root = np.sqrt(np.maximum(quad_b * quad_b - 4.0 * quad_a * quad_c, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        # Two algebraically equal forms of the positive root (q = P(d = -1)): each avoids cancellation on
        # its side of quad_b = 0.
        q = np.where(quad_b > 0.0, -2.0 * quad_c / (quad_b + root), (root - quad_b) / (2.0 * quad_a))
    variance: NDArray[np.float64] = np.maximum(total * (2.0 * q + delta * (1.0 - delta)), 0.0)
    return variance


def tango_statistic(n_up: ArrayLike, n_down: ArrayLike, n: ArrayLike, delta0: ArrayLike) -> NDArray[np.float64]:
    """Tango's (1998) score statistic for H0: Delta = delta0 on paired 0/1 scores; vectorised, n >= 1.

    n_up counts items only the checkpoint gets right (d = +1), n_down items only the base gets right (d = -1).
    The statistic is (n_up - n_down - n*delta0) / sqrt(n*(2q + delta0*(1 - delta0))), q being the maximum-
    likelihood estimate of P(d = -1) restricted to Delta = delta0 (the positive root of a quadratic). It is
    about N(0, 1) on the boundary and decreases in delta0; where its variance vanishes (all d equal and
    delta0 on the estimate, or delta0 = +-1) it is +-inf, or 0 when the numerator is 0 as well.
    """
    up, down, total, delta = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (n_up, n_down, n, delta0)))
    variance = _tango_null_variance(up, down, total, delta)
    numerator = up - down - total * delta
    with np.errstate(divide="ignore", invalid="ignore"):
        degenerate = np.where(numerator == 0.0, 0.0, np.copysign(np.inf, numerator))
        result: NDArray[np.float64] = np.where(variance > 0.0, numerator / np.sqrt(variance), degenerate)
    return result


def tango_p_below(n_up: ArrayLike, n_down: ArrayLike, n: ArrayLike, delta0: ArrayLike) -> NDArray[np.float64]:
    """One-sided Tango score p-value of H0: Delta >= delta0 against Delta < delta0; vectorised."""
    p: NDArray[np.float64] = stats.norm.cdf(tango_statistic(n_up, n_down, n, delta0))
    return p


def tango_bound(n_up: int, n_down: int, n: int, alpha: float, side: Side) -> float:
    """One-sided (1 - alpha) Tango score confidence bound for Delta: where the statistic meets +-z_{1-alpha}.

    It inverts the level-alpha score test (Brent's method on the statistic), so for the upper bound
    tango_p_below(..., delta0) < alpha exactly when the bound lies below delta0. Identical scores give the
    finite Wilson-type bounds -+z^2/(n + z^2).
    """
    if n < 1:
        raise ValueError("no items: a bound needs at least one scored item")
    _check_open_unit("alpha", alpha, 0.5)
    estimate = (n_up - n_down) / n
    z = float(stats.norm.isf(alpha))
    if side == "lower":
        if estimate <= -1.0:
            return -1.0
        lo, hi, target = -1.0 + _EDGE, estimate - _EDGE, z
    else:
        if estimate >= 1.0:
            return 1.0
        lo, hi, target = estimate + _EDGE, 1.0 - _EDGE, -z

    def excess(delta0: float) -> float:
        return float(tango_statistic(n_up, n_down, n, delta0)) - target

    return float(optimize.brentq(excess, lo, hi, xtol=1e-12))


@dataclass(frozen=True)
class PairedEstimate:
    """A mean difference with its standard error; df is the t reference's degrees of freedom (inf: normal)."""

    delta: float
    se: float
    df: float = math.inf

    def p_below(self, delta0: float) -> float:
        """One-sided Wald p-value of H0: Delta >= delta0 against Delta < delta0."""
        if self.se == 0.0:
            # Every difference is equal: no spread to weigh the distance to delta0 against.
            return 0.0 if self.delta < delta0 else 1.0
        return float(stats.t.cdf((self.delta - delta0) / self.se, self.df))

    def bound(self, alpha: float, side: Side) -> float:
        """One-sided (1 - alpha) Wald confidence bound for Delta, clipped to the possible range [-1, 1]."""
        _check_open_unit("alpha", alpha, 0.5)
        half_width = float(stats.t.isf(alpha, self.df)) * self.se
        value = self.delta - half_width if side == "lower" else self.delta + half_width
        return min(1.0, max(-1.0, value))


def unit_labels(n_items: int, clusters: ArrayLike | None = None) -> NDArray[np.intp]:
    """Unit index 0..units-1 per item: its cluster, or the item itself when there are no clusters."""
    if clusters is None:
        return np.arange(n_items)
    labels = np.asarray(clusters)
    if labels.shape != (n_items,):
        raise ValueError(f"clusters must give one id per item ({n_items}), got shape {labels.shape}")
    inverse: NDArray[np.intp] = np.unique(labels, return_inverse=True)[1]
    return inverse


def paired_wald(diffs: ArrayLike, clusters: ArrayLike | None = None) -> PairedEstimate:
    """Paired Wald (t) estimate of Delta = E[d], cluster-robust when items share a cluster (passage).

    Delta is the item mean. With C units (clusters, or items), per-unit mean differences D_c over n_c items
    and N items: Var = C/(C-1) * sum_c n_c^2 (D_c - Delta)^2 / N^2 on C-1 degrees of freedom. Without
    clusters this is the paired t-test's s^2/N. One unit leaves the spread unknown: the se is then infinite.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError("diffs must be a non-empty 1-D array")
    labels = unit_labels(d.size, clusters)
    delta = float(d.mean())
    residual_sums = np.bincount(labels, weights=d - delta)
    units = residual_sums.size
    if units < 2:
        return PairedEstimate(delta=delta, se=math.inf)
    variance = units / (units - 1) * float(np.sum(residual_sums**2)) / d.size**2
    return PairedEstimate(delta=delta, se=math.sqrt(variance), df=units - 1)


def effective_discordance(diffs: ArrayLike, clusters: ArrayLike | None = None) -> float:
    """The r to plan with: the discordance for unclustered 0/1 scores, in general C * sum_c S_c^2 / N^2.

    S_c sums d over unit c (a cluster, or an item). At Delta = 0, Var(Delta-hat) is about r / C: the role r
    plays in n = (z_{1-alpha} + z_power)^2 r / B^2 with n counted in units.
    """
    d = np.asarray(diffs, dtype=np.float64)
    labels = unit_labels(d.size, clusters)
    sums = np.bincount(labels, weights=d)
    return sums.size * float(np.sum(sums**2)) / d.size**2


def holm_adjust(p_values: ArrayLike) -> NDArray[np.float64]:
    """Holm step-down adjusted p-values: Holm rejects i at family-wise alpha iff adjusted[i] < alpha."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    steps = p.size - np.arange(p.size)
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(steps * p[order]), 1.0)
    return adjusted


def holm_levels(p_values: ArrayLike, alpha: float) -> NDArray[np.float64]:
    """The per-hypothesis level Holm's procedure actually tests each hypothesis at.

    The i-th smallest p-value faces alpha / (m - i) while every smaller one is rejected; once one is not, all
    later hypotheses keep that last level, so p[i] < levels[i] exactly when Holm rejects hypothesis i.
    """
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    steps = p.size - np.arange(p.size)
    accepted = np.flatnonzero(p[order] >= alpha / steps)
    stop = accepted[0] if accepted.size else p.size
    levels = np.empty_like(p)
    levels[order] = alpha / steps[np.minimum(np.arange(p.size), stop)]
    return levels


def _z_sum(alpha: float, power: float) -> float:
    _check_open_unit("alpha", alpha, 0.5)
    _check_open_unit("power", power)
    return float(stats.norm.isf(alpha) + stats.norm.ppf(power))


def planning_margin(se_points: float, alpha: float, power: float) -> float:
    """Points a one-sided level-alpha test needs the truth to clear its margin by, to reject with `power`."""
    return _z_sum(alpha, power) * se_points


def required_items(budget_points: float, discordance: float, alpha: float, power: float) -> int:
    """Items for a one-sided level-alpha test to clear a budget with `power`: ceil((z_{1-a} + z_pow)^2 r/B^2).

    For PASS at Delta = 0 with 95% probability (alpha 0.05, power 0.95): 1,203 items at r = 0.1, B = 3 points.
    """
    if budget_points <= 0.0 or discordance < 0.0:
        raise ValueError("budget_points must be positive and discordance non-negative")
    return max(1, math.ceil(_z_sum(alpha, power) ** 2 * discordance / (budget_points / 100.0) ** 2))


def tango_required_items(budget_points: float, discordance: float, alpha: float, power: float) -> int:
    """Items for Tango's score test to PASS a checkpoint with Delta = 0 with probability `power`.

    n = (z_{1-alpha} sqrt(v0) + z_power sqrt(r))^2 / B^2, v0 being the per-item variance restricted to
    Delta = -B, by which the score test standardises. Where B is not small against r, v0 exceeds r (by 7% at
    r = 0.1, B = 3 points; by 25% at r = 0.05) and required_items' first-order n falls short of `power`
    (PASS 94.7% and 93.5% there instead of 95%). At r = 0 this is the n where identical scores' bound
    z^2/(n + z^2) clears the budget.
    """
    _check_open_unit("alpha", alpha, 0.5)
    return max(1, math.ceil(_pass_units(float(stats.norm.isf(alpha)), budget_points, discordance, power)))


def _pass_units(critical: float, budget_points: float, discordance: float, power: float) -> float:
    """(critical sqrt(v0) + z_power sqrt(r))^2 / B^2 unrounded: units for a test that standardises by Tango's
    null variance v0 at Delta = -B, and rejects beyond `critical` standard errors, to PASS Delta = 0."""
    if not 0.0 < budget_points < 100.0 or not 0.0 <= discordance <= 1.0:
        raise ValueError("budget_points must be in (0, 100) and discordance in [0, 1]")
    _check_open_unit("power", power)
    margin = budget_points / 100.0
    half = np.array(discordance / 2.0)
    null_variance = float(_tango_null_variance(half, half, np.array(1.0), np.array(-margin)))
    spread = critical * math.sqrt(null_variance) + float(stats.norm.ppf(power)) * math.sqrt(discordance)
    return float((spread / margin) ** 2)


def certifiable_budget(n: int, discordance: float, alpha: float, power: float) -> float:
    """Smallest budget (points) n items PASS with probability `power` when the truth is Delta = 0."""
    if n < 1 or discordance < 0.0:
        raise ValueError("n must be at least 1 and discordance non-negative")
    return planning_margin(100.0 * math.sqrt(discordance / n), alpha, power)


def detectable_regression(n: int, discordance: float, alpha: float, power: float, budget: float) -> float:
    """Smallest true drop (points, positive) that n items FAIL with probability `power` against `budget`.

    FAIL needs the upper bound below -budget, so the drop must exceed the budget by the same margin a PASS
    needs at Delta = 0: budget + (z_{1-alpha} + z_power) sqrt(r / n), in points.
    """
    return budget + certifiable_budget(n, discordance, alpha, power)


# --- anytime-valid confidence sequences --------------------------------------------------------------------
#
# Units are paired differences d in [-1, 1] (or per-cluster mean differences), in the order they were scored.
# All of them are one-sided and cover the mean at every number of units simultaneously with probability at
# least 1 - alpha, so they may be looked at after every batch; fixed-n bounds may not.

SequenceMethod = Literal["design-betting", "normal-mixture", "betting"]
SEQUENCE_METHODS: tuple[SequenceMethod, ...] = ("design-betting", "normal-mixture", "betting")

# Plain betting caps each bet at this fraction of the most the capital can stake without risking ruin
# (Waudby-Smith & Ramdas 2023 suggest 1/2 or 3/4).
_BET_CAP = 0.5
# The design bettor's running second moment starts from this many pseudo-units at the planning discordance;
# its bets stop at this fraction of the stake that could ruin it (a run of identical scores is no certainty).
_PRIOR_UNITS = 20.0
_DESIGN_BET_CAP = 0.8
# Its running mean starts from this many pseudo-units at the design alternative: enough that noise around the
# design case barely moves the aim, few enough that a drop far beyond it is bet on (and bounded) as such.
_AIM_PRIOR_UNITS = 300.0
# Means of units cannot exceed 1: an aim (or a planned truth) beyond, as 2B is for budgets over 50 points, stops here.
_HIGHEST_MEAN = 1.0 - 1e-9
# What the plan reports when no number of units reaches the target (the capital does not grow).
UNREACHABLE_UNITS = 10**9


def sequence_units(diffs: ArrayLike, clusters: ArrayLike | None = None) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """The units a confidence sequence runs on, in the order first scored, and the items in each unit.

    Without clusters every item is a unit. With clusters a unit is a cluster's mean difference over the items
    scored so far, placed where its first item was scored (the runner should stream whole clusters).
    """
    d = np.asarray(diffs, dtype=np.float64)
    if clusters is None:
        return d, np.ones(d.size, dtype=np.intp)
    unit_labels(d.size, clusters)
    first, labels = np.unique(np.asarray(clusters), return_index=True, return_inverse=True)[1:]
    order = np.argsort(first)
    counts = np.bincount(labels)[order]
    means: NDArray[np.float64] = np.bincount(labels, weights=d)[order] / counts
    return means, counts.astype(np.intp)


def normal_mixture_rho(v_opt: float, alpha: float) -> float:
    """Mixture precision rho that makes the one-sided normal-mixture boundary tightest near intrinsic time v_opt.

    Howard et al. (2021), section 3.5: the two-sided optimum taken at 2 * alpha,
    v_opt / (2 log(1/(2 alpha)) + log(1 + 2 log(1/(2 alpha)))); within 0.01% of the exact optimum.
    """
    _check_open_unit("alpha", alpha, 0.5)
    if v_opt <= 0.0:
        raise ValueError(f"v_opt must be positive, got {v_opt!r}")
    twice_log = 2.0 * math.log(1.0 / (2.0 * alpha))
    return v_opt / (twice_log + math.log1p(twice_log))


def normal_mixture_log_e(s: ArrayLike, v: ArrayLike, rho: float) -> NDArray[np.float64]:
    """Log of the one-sided normal-mixture supermartingale at sum s and intrinsic time v (Howard et al. 2021).

    The mixture of exp(lambda s - lambda^2 v / 2) over a half-normal lambda with precision rho:
    log(4 rho / (v + rho)) / 2 + s^2 / (2 (v + rho)) + log Phi(s / sqrt(v + rho)); increasing in s.
    """
    s_arr, v_arr = np.broadcast_arrays(np.asarray(s, dtype=np.float64), np.asarray(v, dtype=np.float64))
    scale = v_arr + rho
    log_e: NDArray[np.float64] = (
        0.5 * np.log(4.0 * rho / scale) + s_arr**2 / (2.0 * scale) + special.log_ndtr(s_arr / np.sqrt(scale))
    )
    return log_e


def normal_mixture_boundary(v: ArrayLike, rho: float, alpha: float) -> NDArray[np.float64]:
    """The one-sided normal-mixture boundary: the s at which normal_mixture_log_e reaches log(1/alpha).

    A process with sub-Gaussian increments and variance process V_t crosses s_t >= boundary(V_t) at some t with
    probability at most alpha. Solved in y = s / sqrt(v + rho), where y^2/2 + log Phi(y) is convex and increasing,
    by Newton's method from the right of the root.
    """
    _check_open_unit("alpha", alpha, 0.5)
    v_arr = np.asarray(v, dtype=np.float64)
    target = math.log(1.0 / alpha) - 0.5 * np.log(4.0 * rho / (v_arr + rho))

    def excess(y: NDArray[np.float64]) -> NDArray[np.float64]:
        value: NDArray[np.float64] = 0.5 * y * y + special.log_ndtr(y) - target
        return value

    def slope(y: NDArray[np.float64]) -> NDArray[np.float64]:
        value: NDArray[np.float64] = y + np.exp(stats.norm.logpdf(y) - special.log_ndtr(y))
        return value

    # The target exceeds log(1/(2 alpha)) > 0, and the excess is positive from sqrt(2 target) + 1 on.
    start = np.sqrt(2.0 * target) + 1.0
    y = np.asarray(optimize.newton(excess, start, fprime=slope, tol=1e-12, maxiter=100), dtype=np.float64)
    boundary: NDArray[np.float64] = y * np.sqrt(v_arr + rho)
    return boundary


def _mixture_log_p(z: ArrayLike, fraction: ArrayLike, alpha: float) -> NDArray[np.float64]:
    f = np.asarray(fraction, dtype=np.float64)
    log_e = normal_mixture_log_e(np.asarray(z, dtype=np.float64) * np.sqrt(f), f, normal_mixture_rho(1.0, alpha))
    log_p: NDArray[np.float64] = np.minimum(0.0, -log_e)
    return log_p


def mixture_p_value(z: ArrayLike, fraction: ArrayLike, alpha: float) -> NDArray[np.float64]:
    """Anytime-valid p-value of a standardised statistic z under the normal mixture tuned at level alpha.

    z is the estimate's distance beyond the null value in standard errors, signed so that positive is evidence
    against the null; fraction is the information so far over the information planned (t / n_planned for one
    task). The mixture is tuned to be tightest at fraction 1: p = min(1, 1 / e) with e the one-sided mixture at
    sum z sqrt(f) and intrinsic time f, so p < alpha exactly when z exceeds boundary(f) / sqrt(f).
    """
    p: NDArray[np.float64] = np.exp(_mixture_log_p(z, fraction, alpha))
    return p


def mixture_radius(se: ArrayLike, fraction: ArrayLike, alpha: float) -> NDArray[np.float64]:
    """Half-width of the normal-mixture bound on an estimate with standard error se: se * boundary(f) / sqrt(f)."""
    f = np.asarray(fraction, dtype=np.float64)
    boundary = normal_mixture_boundary(f, normal_mixture_rho(1.0, alpha), alpha)
    radius: NDArray[np.float64] = np.asarray(se, dtype=np.float64) * boundary / np.sqrt(f)
    return radius


def sequence_critical_value(method: SequenceMethod, alpha: float) -> float:
    """A sequence's half-width in standard errors at its planned units: its counterpart of z_{1-alpha}.

    Normal mixture: boundary(1) at the tuned rho (2.77 at alpha = 0.05, 3.35 at 0.01). Betting: about
    sqrt(2 log(1/alpha)), as a constant bet lambda = sqrt(2 log(1/alpha) / (n sigma^2)) gains
    lambda S - lambda^2 n sigma^2 / 2, which reaches log(1/alpha) once the mean clears that many standard errors.
    """
    if method == "design-betting":
        raise ValueError("design-betting has no critical value: its plans come from its log-capital's growth")
    if method == "normal-mixture":
        return float(mixture_radius(1.0, 1.0, alpha))
    _check_open_unit("alpha", alpha, 0.5)
    return math.sqrt(2.0 * math.log(1.0 / alpha))


def _null_z(units: NDArray[np.float64], delta0: float) -> NDArray[np.float64]:
    """(mean - delta0) / se after each prefix, the variance estimated under H0: mean = delta0.

    Paired 0/1 scores (units in {-1, 0, 1}) use Tango's restricted maximum-likelihood variance: under
    H0 at least |delta0| of the items differ, which the raw plug-in misses when few discordant items have been
    seen. Other units use their second moment about delta0 with one pseudo-unit of the largest variance, 1.
    """
    t = np.arange(1, units.shape[-1] + 1, dtype=np.float64)
    sums = np.cumsum(units, axis=-1)
    if np.all((units == 0.0) | (np.abs(units) == 1.0)):
        n_up = np.cumsum(units > 0.0, axis=-1)
        return tango_statistic(n_up, n_up - sums, t, delta0)
    second_moment = (1.0 + np.cumsum((units - delta0) ** 2, axis=-1)) / (t + 1.0)
    z: NDArray[np.float64] = (sums - t * delta0) / np.sqrt(t * second_moment)
    return z


def _betting_log_capital(
    units: NDArray[np.float64], delta0: float, side: Side, alpha: float, planned: int
) -> NDArray[np.float64]:
    """Log capital after each prefix of a bettor against H0 on `side` (Waudby-Smith & Ramdas 2023).

    Units map to x = (1 +- d)/2 in [0, 1] so the bet is always on a mean above m = (1 +- delta0)/2. The bet
    lambda_i = min(sqrt(2 log(1/alpha) / (n_planned sigma_{i-1}^2)), c / m) is predictable: sigma_{i-1}^2 is
    their regularised running variance of the first i - 1 units, (1/4 + sum (x_j - mu_j)^2) / i.
    """
    sign = 1.0 if side == "lower" else -1.0
    x = (1.0 + sign * units) / 2.0
    m = (1.0 + sign * delta0) / 2.0
    t = np.arange(1, x.shape[-1] + 1, dtype=np.float64)
    running_mean = (0.5 + np.cumsum(x, axis=-1)) / (t + 1.0)
    spread = 0.25 + np.cumsum((x - running_mean) ** 2, axis=-1)
    previous_spread = np.concatenate([np.full((*x.shape[:-1], 1), 0.25), spread[..., :-1]], axis=-1)
    cap = _BET_CAP / m if m > 0.0 else math.inf
    bet = np.minimum(np.sqrt(2.0 * math.log(1.0 / alpha) * t / (planned * previous_spread)), cap)
    log_capital: NDArray[np.float64] = np.cumsum(np.log1p(bet * (x - m)), axis=-1)
    return log_capital


def ternary_kelly_bet(aim: ArrayLike, second_moment: ArrayLike, null_mean: float, most: float) -> NDArray[np.float64]:
    """The growth-optimal bet against a mean of null_mean when units take -1, 0, 1 with mean `aim` (> null_mean)
    and mean square `second_moment` (clipped into [|aim|, 1]), at most `most`.

    Maximises p log(1 + l(1 - m)) + o log(1 - l m) + q log(1 - l(1 + m)); the first-order condition times the
    three factors is the quadratic c2 l^2 + c1 l + c0 with c0 = aim - m > 0 and c2 = -m (1 - m)(-1 - m), whose
    smallest positive root is the bet (computed as 2 c0 / (-c1 + sqrt(c1^2 - 4 c2 c0)), stable for c2 -> 0);
    with no such root the growth rises all the way and the bet is `most`.
    """
    a = np.asarray(aim, dtype=np.float64)
    s2 = np.clip(np.asarray(second_moment, dtype=np.float64), np.abs(a), 1.0)
    m = null_mean
    up, down, tie = (s2 + a) / 2.0, (s2 - a) / 2.0, 1.0 - s2
    u_up, u_tie, u_down = 1.0 - m, -m, -1.0 - m
    c0 = a - m
    c1 = up * u_up * (u_tie + u_down) + tie * u_tie * (u_up + u_down) + down * u_down * (u_up + u_tie)
    c2 = u_tie * u_up * u_down
    discriminant = c1 * c1 - 4.0 * c2 * c0
    denominator = -c1 + np.sqrt(np.maximum(discriminant, 0.0))
    has_root = (discriminant >= 0.0) & (denominator > 0.0)
    root = 2.0 * c0 / np.where(has_root, denominator, 1.0)
    bets: NDArray[np.float64] = np.clip(np.where(has_root, root, most), 0.0, most)
    return bets


def design_bets(
    units: NDArray[np.float64], delta0: float, side: Side, gap: float, prior_discordance: float
) -> NDArray[np.float64]:
    """The design bettor's predictable bets against H0 on `side` (see design_log_capital), one per unit.

    In the bettor's orientation x = +-d must have a mean above m = +-delta0. It aims at the design
    alternative m + gap, or farther when the running mean of the units before this one (started from
    _AIM_PRIOR_UNITS pseudo-units at the design alternative) lies farther. The bet is the growth-optimal one
    (ternary_kelly_bet) for units of -1, 0, 1 with that mean and with s2, the running mean of x^2 over the units
    before this one (the discordance rate, for paired 0/1 scores), started from _PRIOR_UNITS pseudo-units at
    prior_discordance; other units in [-1, 1] are bet on as if they were ternary with the same two moments. At
    most _DESIGN_BET_CAP / (1 + m), which keeps every factor 1 + bet (x - m) at least 1 - _DESIGN_BET_CAP.
    """
    sign = 1.0 if side == "lower" else -1.0
    m, x = sign * delta0, sign * units
    t = np.arange(x.shape[-1], dtype=np.float64)

    def before(values: NDArray[np.float64]) -> NDArray[np.float64]:
        sums = np.cumsum(values, axis=-1)
        return np.concatenate([np.zeros((*values.shape[:-1], 1)), sums[..., :-1]], axis=-1)

    design = min(m + gap, _HIGHEST_MEAN)
    running = (_AIM_PRIOR_UNITS * design + before(x)) / (_AIM_PRIOR_UNITS + t)
    aim = np.minimum(np.maximum(design, running), _HIGHEST_MEAN)
    second_moment = (_PRIOR_UNITS * prior_discordance + before(x**2)) / (_PRIOR_UNITS + t)
    return ternary_kelly_bet(aim, second_moment, m, _DESIGN_BET_CAP / (1.0 + m))


def design_log_capital(
    units: NDArray[np.float64], delta0: float, side: Side, gap: float, prior_discordance: float
) -> NDArray[np.float64]:
    """Log capital after each prefix of a bettor against H0 on `side`, aiming at the design alternative.

    side "lower" bets against H0: mean <= delta0 and aims at delta0 + gap (PASS: the null is -B and the design
    checkpoint Delta = 0, so gap = B); "upper" against H0: mean >= delta0, aiming at delta0 - gap (FAIL: the
    design regression -2B), or beyond it when the data show more. Under H0 every factor has expectation at
    most 1 whatever the bets, as they are predictable and bounded, so the capital is a nonnegative
    supermartingale and, by Ville's inequality, reaches 1/alpha with probability at most alpha: valid at every
    n, with no variance assumption. Aiming at the design alternative instead of mixing over all alternatives
    is what makes it decide the design cases early: its growth there is Wald's SPRT's, with the nuisance
    discordance learnt on the way. The price: a truth between the null and about half-way to the design
    alternative grows its capital slowly or not at all, so such small effects end undecided (WARN).
    """
    sign = 1.0 if side == "lower" else -1.0
    bets = design_bets(units, delta0, side, gap, prior_discordance)
    log_capital: NDArray[np.float64] = np.cumsum(np.log1p(bets * (sign * (units - delta0))), axis=-1)
    return log_capital


@dataclass(frozen=True)
class ConfidenceSequence:
    """A one-sided anytime-valid confidence sequence for the mean of units in [-1, 1].

    method "design-betting" (the gate's default): a bettor aiming at the design alternative `gap` beyond each
    null value (see design_log_capital), valid at every n; `gap` is required and `prior_discordance` starts
    its variance estimate. "normal-mixture": Howard et al.'s (2021) one-sided normal-mixture boundary, rho
    tuned at the planned units, on the mean standardised by a plug-in variance estimated under the null (see
    _null_z): valid as the units grow, like Waudby-Smith et al.'s (2021) asymptotic sequences. "betting":
    Waudby-Smith & Ramdas's (2023) predictable plug-in betting capital, valid at every n for bounded units. The
    last two are tuned for `planned` units.

    The design bettor's bets move with the null value, so its p-value need not be monotone in it: `bound`
    reports where it crosses alpha, the decisions read the p-value at the margin itself.

    side "lower" bounds the mean from below at level alpha, "upper" from above. The bound after t units is the
    intersection of the bounds after every prefix of at least `start` units: coverage is simultaneous, so the
    intersection keeps it, and a decision once reached stays reached as units arrive.
    """

    method: SequenceMethod
    side: Side
    alpha: float
    planned: int
    start: int = 1
    gap: float | None = None
    prior_discordance: float = 0.1

    def __post_init__(self) -> None:
        _check_open_unit("alpha", self.alpha, 0.5)
        if self.planned < 1 or self.start < 1:
            raise ValueError("planned and start must be at least 1 unit")
        if self.method not in SEQUENCE_METHODS:
            raise ValueError(f"method must be one of {', '.join(SEQUENCE_METHODS)}, got {self.method!r}")
        if self.method == "design-betting" and not (self.gap is not None and 0.0 < self.gap < 1.0):
            raise ValueError(f"design-betting needs the design gap in (0, 1), got {self.gap!r}")
        if not 0.0 <= self.prior_discordance <= 1.0:
            raise ValueError(f"prior_discordance must be in [0, 1], got {self.prior_discordance!r}")

    def p_values(self, units: ArrayLike, delta0: float) -> NDArray[np.float64]:
        """Anytime p-value of H0 on `side` after each prefix (1 before `start`); the last axis counts units.

        side "upper" tests H0: mean >= delta0, "lower" H0: mean <= delta0; p < alpha exactly when the bound
        after that prefix excludes delta0. Vectorised over leading axes (independent sequences).
        """
        u = np.asarray(units, dtype=np.float64)
        if u.ndim == 0 or u.shape[-1] == 0:
            raise ValueError("units must be a non-empty array (rows of units for several sequences)")
        if not (np.all(np.isfinite(u)) and np.all(np.abs(u) <= 1.0)):
            raise ValueError("units must be finite and lie in [-1, 1]")
        if self.method == "normal-mixture":
            z = _null_z(u, delta0)
            fraction = np.arange(1, u.shape[-1] + 1) / self.planned
            log_p = _mixture_log_p(-z if self.side == "upper" else z, fraction, self.alpha)
        elif self.method == "design-betting":
            assert self.gap is not None  # checked in __post_init__
            if not -1.0 < delta0 < 1.0:
                raise ValueError(f"design-betting tests a null value inside (-1, 1), got {delta0!r}")
            log_p = -design_log_capital(u, delta0, self.side, self.gap, self.prior_discordance)
        else:
            log_p = -_betting_log_capital(u, delta0, self.side, self.alpha, self.planned)
        log_p[..., : self.start - 1] = 0.0
        p: NDArray[np.float64] = np.minimum(1.0, np.exp(np.minimum.accumulate(log_p, axis=-1)))
        return p

    def p_value(self, units: ArrayLike, delta0: float) -> float:
        """Anytime p-value after all the units of one sequence (see p_values)."""
        return float(self.p_values(np.ravel(units), delta0)[-1])

    def bound(self, units: ArrayLike) -> float:
        """The (1 - alpha) bound on `side` after all the units of one sequence, in [-1, 1].

        The delta0 where p_value crosses alpha: the evidence against delta0 grows as delta0 moves away from
        the estimate on `side`, so Brent's method finds it; -1 (lower) or 1 (upper) when nothing is excluded.
        """
        u = np.ravel(np.asarray(units, dtype=np.float64))
        sign = 1.0 if self.side == "upper" else -1.0
        log_alpha = math.log(self.alpha)

        def excess(delta0: float) -> float:
            return math.log(max(self.p_value(u, delta0), 1e-300)) - log_alpha

        if excess(sign * (1.0 - _EDGE)) >= 0.0:
            return sign
        if excess(-sign * (1.0 - _EDGE)) < 0.0:
            return -sign
        return float(optimize.brentq(excess, -1.0 + _EDGE, 1.0 - _EDGE, xtol=1e-10))


def _design_log_factor_moments(
    gap: float, null_mean: float, truth_mean: float, discordance: float, binary: bool
) -> tuple[float, float]:
    """Mean and variance of the design bettor's log factor per unit, once its estimates have settled.

    Oriented as design_bets: it bets on a mean above null_mean, aiming at null_mean + gap. Binary: paired 0/1
    scores (clustered ones too: their cluster means are planned as if ternary, which overstates their spread),
    whose oriented difference has mean truth_mean and discordance max(discordance, |truth_mean|). Otherwise
    (scores in [0, 1]) `discordance` is E[d^2] of an unchanged checkpoint, a spread the difference keeps when its
    mean moves to truth_mean: truth_mean +- its square root, with equal chances.
    """
    most = _DESIGN_BET_CAP / (1.0 + null_mean)
    aim, truth_mean = min(null_mean + gap, _HIGHEST_MEAN), min(truth_mean, _HIGHEST_MEAN)
    if binary:
        r = max(discordance, abs(truth_mean))
        bet = float(ternary_kelly_bet(aim, r, null_mean, most))
        outcomes = np.array([1.0, 0.0, -1.0])
        chances = np.array([(r + truth_mean) / 2.0, 1.0 - r, (r - truth_mean) / 2.0])
    else:
        bet = float(ternary_kelly_bet(aim, discordance + aim**2, null_mean, most))
        spread = math.sqrt(discordance)
        outcomes = np.clip(np.array([truth_mean + spread, truth_mean - spread]), -1.0, 1.0)
        chances = np.array([0.5, 0.5])
    logs = np.log1p(bet * (outcomes - null_mean))
    mean = float(chances @ logs)
    return mean, max(0.0, float(chances @ logs**2) - mean**2)


def _design_units(
    gap: float, null_mean: float, truth_mean: float, discordance: float, alpha: float, power: float, binary: bool
) -> float:
    """Units (unrounded) by which the design bettor's capital reaches 1/alpha with `power`, inf if it does not grow.

    Its log capital after n units is about normal with mean n g and variance n V (the factor's moments): the
    smallest n with n g - z_power sqrt(n V) >= log(1/alpha), solved as a quadratic in sqrt(n). Conservative
    for the gate: earlier looks at the running maximum only add chances to decide.
    """
    _check_open_unit("alpha", alpha, 0.5)
    _check_open_unit("power", power)
    growth, variance = _design_log_factor_moments(gap, null_mean, truth_mean, discordance, binary)
    if growth <= 0.0:
        return math.inf
    z, target = float(stats.norm.ppf(power)), math.log(1.0 / alpha)
    root = (z * math.sqrt(variance) + math.sqrt(z * z * variance + 4.0 * growth * target)) / (2.0 * growth)
    return root * root


def _whole_units(units: float) -> int:
    """Units rounded up, at least 1; UNREACHABLE_UNITS where none suffice."""
    return max(1, math.ceil(units)) if units < UNREACHABLE_UNITS else UNREACHABLE_UNITS


def _check_plan_inputs(budget_points: float, discordance: float) -> None:
    if not 0.0 < budget_points < 100.0 or not 0.0 <= discordance <= 1.0:
        raise ValueError("budget_points must be in (0, 100) and discordance in [0, 1]")


def sequence_required_units(
    budget_points: float, discordance: float, alpha: float, power: float, method: SequenceMethod, binary: bool = True
) -> int:
    """Units for a sequence tuned at them to FAIL a checkpoint at Delta = -2B with `power` by its last look.

    design-betting: _design_units with the truth at the design regression (for 0/1 scores the discordance is at
    least 2B there; binary=False plans scores in [0, 1] or cluster means, see _design_log_factor_moments). Otherwise
    n = (h + z_power)^2 r / B^2, h being sequence_critical_value: required_items with z_{1-alpha} replaced by the
    sequence's critical value. Conservative twice over: below the margin the variances the sequence meets (the
    truth's, and Tango's restricted one at -B) are at most r, and earlier looks add chances to decide.
    """
    if budget_points <= 0.0 or discordance < 0.0:
        raise ValueError("budget_points must be positive and discordance non-negative")
    _check_open_unit("power", power)
    if method == "design-betting":
        _check_plan_inputs(budget_points, discordance)
        margin = budget_points / 100.0
        return _whole_units(_design_units(margin, margin, 2.0 * margin, discordance, alpha, power, binary))
    spread = sequence_critical_value(method, alpha) + float(stats.norm.ppf(power))
    return max(1, math.ceil(spread**2 * discordance / (budget_points / 100.0) ** 2))


def _sequence_pass_units(
    budget_points: float, discordance: float, alpha: float, power: float, method: SequenceMethod, binary: bool
) -> float:
    if method == "design-betting":
        _check_plan_inputs(budget_points, discordance)
        margin = budget_points / 100.0
        return _design_units(margin, -margin, 0.0, discordance, alpha, power, binary)
    return _pass_units(sequence_critical_value(method, alpha), budget_points, discordance, power)


def sequence_pass_units(
    budget_points: float, discordance: float, alpha: float, power: float, method: SequenceMethod, binary: bool = True
) -> int:
    """Units for a sequence tuned at them to PASS a checkpoint at Delta = 0 with `power` by its last look.

    design-betting: _design_units with the truth at the design checkpoint. Otherwise tango_required_items
    with z_{1-alpha} replaced by the sequence's critical value: the normal mixture standardises paired 0/1
    units by Tango's null variance v0, which exceeds r where B is not small against r (r = 0.05, B = 5
    points: the first-order plan PASSes 94.5% of benign checkpoints instead of 95%).
    """
    return _whole_units(_sequence_pass_units(budget_points, discordance, alpha, power, method, binary))


def sequence_certifiable(
    n: int, discordance: float, alpha: float, power: float, method: SequenceMethod, binary: bool = True
) -> float:
    """Smallest budget (points) a sequence tuned at n units PASSes with `power` by n when Delta = 0 (at most 100)."""
    if n < 1 or not 0.0 <= discordance <= 1.0:
        raise ValueError("n must be at least 1 and discordance in [0, 1]")

    def excess(budget_points: float) -> float:
        return math.log(_sequence_pass_units(budget_points, discordance, alpha, power, method, binary) / n)

    widest = 100.0 - 1e-6
    if excess(widest) > 0.0:
        return 100.0
    return float(optimize.brentq(excess, 1e-6, widest, xtol=1e-9))


def sequence_detectable(
    n: int,
    discordance: float,
    alpha: float,
    power: float,
    budget: float,
    method: SequenceMethod,
    binary: bool = True,
) -> float:
    """Smallest true drop (points, positive) a sequence tuned at n units FAILs with `power` by n against budget.

    design-betting: the drop at which _design_units (bets aimed at -2B) falls to n, at most 100 points.
    Otherwise budget + (h + z_power) 100 sqrt(r / n): sequence_required_units solved for the drop.
    """
    if n < 1 or discordance < 0.0:
        raise ValueError("n must be at least 1 and discordance non-negative")
    _check_open_unit("power", power)
    if method == "design-betting":
        _check_plan_inputs(budget, discordance)
        margin = budget / 100.0

        def excess(drop: float) -> float:
            return math.log(_design_units(margin, margin, drop, discordance, alpha, power, binary) / n)

        widest = 1.0 - 1e-9
        if excess(widest) > 0.0:
            return 100.0
        # Just beyond the margin the capital barely grows, so the units needed exceed any n there.
        return 100.0 * float(optimize.brentq(excess, margin * (1.0 + 1e-9), widest, xtol=1e-10))
    spread = sequence_critical_value(method, alpha) + float(stats.norm.ppf(power))
    return budget + spread * 100.0 * math.sqrt(discordance / n)
