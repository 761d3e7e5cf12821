"""gate.sequential and the confidence sequences in gate.stats: the normal-mixture boundary against Howard et al.'s
formulas and a numerical mixture, simultaneous coverage under continuous monitoring by seeded Monte-Carlo, a
smaller version of bench/simulate_sequential.py's claims, the smoke stage, the look's rules, and planning."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, optimize, stats

from gate.decision import COMPOSITE, Outcome
from gate.sequential import (
    Answers,
    SequentialPolicy,
    StopReason,
    fail_outlook,
    format_collapse,
    look,
    normalise_answer,
    plan,
    smoke_check,
)
from gate.stats import (
    ConfidenceSequence,
    mixture_p_value,
    mixture_radius,
    normal_mixture_boundary,
    normal_mixture_log_e,
    normal_mixture_rho,
    sequence_certifiable,
    sequence_critical_value,
    sequence_detectable,
    sequence_pass_units,
    sequence_required_units,
    sequence_units,
    ternary_kelly_bet,
)
from gate.verdict import TaskEvidence

SEED = 20240611
SINGLE = SequentialPolicy(composite_budget=None)
MIXTURE = replace(SINGLE, sequence="normal-mixture")


def draw_differences(rng: np.random.Generator, reps: int, n: int, delta: float, r: float) -> np.ndarray:
    """(reps, n) paired 0/1 differences: +1 with probability (r + delta)/2, -1 with (r - delta)/2."""
    u = rng.random((reps, n))
    return np.where(u < (r + delta) / 2, 1.0, np.where(u < r, -1.0, 0.0))


def scores(d: np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """0/1 base and ckpt scores with differences d; ties are both right or both wrong at random."""
    tie = (rng or np.random.default_rng(SEED)).random(d.size) < 0.5
    base = np.where(d == 0, tie, d < 0).astype(float)
    ckpt = np.where(d == 0, tie, d > 0).astype(float)
    return base, ckpt


def task(name: str, d: np.ndarray, budget: float = 3.0, **kwargs: object) -> TaskEvidence:
    base, ckpt = scores(d)
    return TaskEvidence(name, base, ckpt, budget, **kwargs)  # type: ignore[arg-type]


# --- the normal-mixture boundary (Howard, Ramdas, McAuliffe & Sekhon 2021) -----------------------------------


@pytest.mark.parametrize(("v", "rho", "alpha"), [(1.0, 0.16, 0.05), (500.0, 80.0, 0.01), (3e4, 10.0, 0.001)])
def test_boundary_is_where_the_papers_one_sided_mixture_reaches_one_over_alpha(
    v: float, rho: float, alpha: float
) -> None:
    """The one-sided mixture written out from the paper: sqrt(4 rho/(v + rho)) e^{s^2/2(v+rho)} Phi(s/sqrt(v+rho))."""
    s = float(normal_mixture_boundary(v, rho, alpha))
    mixture = math.sqrt(4 * rho / (v + rho)) * math.exp(s**2 / (2 * (v + rho))) * stats.norm.cdf(s / math.sqrt(v + rho))
    assert mixture == pytest.approx(1 / alpha, rel=1e-9)


@pytest.mark.parametrize(("s", "v", "rho"), [(3.0, 2.0, 0.5), (-1.0, 10.0, 2.0), (40.0, 400.0, 60.0)])
def test_log_e_is_the_half_normal_mixture_of_exponential_supermartingales(s: float, v: float, rho: float) -> None:
    """Integrate exp(lambda s - lambda^2 v / 2) against the half-normal density of precision rho numerically."""

    def integrand(lam: float) -> float:
        return 2.0 * math.sqrt(rho / (2 * math.pi)) * math.exp(lam * s - lam**2 * (v + rho) / 2)

    numeric = integrate.quad(integrand, 0.0, np.inf)[0]
    assert float(normal_mixture_log_e(s, v, rho)) == pytest.approx(math.log(numeric), rel=1e-8)


@given(st.floats(1.0, 1e5), st.floats(1e-3, 0.2))
def test_one_sided_boundary_lies_between_the_closed_form_two_sided_ones(v: float, alpha: float) -> None:
    """The paper's two-sided normal mixture sqrt((v + rho) log((v + rho) / (rho alpha^2))) at alpha and 2 alpha
    brackets the one-sided boundary: the one-sided mixture is at most twice the two-sided one, and at least it
    where s >= 0."""
    rho = normal_mixture_rho(v, alpha)

    def two_sided(level: float) -> float:
        return math.sqrt((v + rho) * math.log((v + rho) / (rho * level**2)))

    s = float(normal_mixture_boundary(v, rho, alpha))
    assert two_sided(2 * alpha) <= s * (1 + 1e-9)
    assert s <= two_sided(alpha) * (1 + 1e-9)


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.0045])
def test_rho_is_howards_closed_form_and_near_optimal(alpha: float) -> None:
    v = 1000.0
    log_term = 2 * math.log(1 / (2 * alpha))
    assert normal_mixture_rho(v, alpha) == pytest.approx(v / (log_term + math.log(1 + log_term)))
    best = optimize.minimize_scalar(
        lambda log_rho: float(normal_mixture_boundary(v, math.exp(log_rho), alpha)), bounds=(0, 10), method="bounded"
    )
    assert float(normal_mixture_boundary(v, normal_mixture_rho(v, alpha), alpha)) <= best.fun * 1.001


def test_mixture_radius_and_p_value_are_scale_free_and_dual() -> None:
    """At n units planned, the radius after t units is sigma boundary(t; rho(n)) / t; p < alpha at the radius."""
    n, t, sigma, alpha = 1200, 300, 0.3, 0.05
    radius = float(mixture_radius(sigma / math.sqrt(t), t / n, alpha))
    assert radius == pytest.approx(sigma * float(normal_mixture_boundary(t, normal_mixture_rho(n, alpha), alpha)) / t)
    z = radius / (sigma / math.sqrt(t))
    assert float(mixture_p_value(z, t / n, alpha)) == pytest.approx(alpha, rel=1e-8)
    assert sequence_critical_value("normal-mixture", 0.05) == pytest.approx(2.766, abs=1e-3)
    assert sequence_critical_value("betting", 0.05) == pytest.approx(math.sqrt(2 * math.log(20)))


# --- coverage at every look at once (continuous monitoring) -------------------------------------------------

REPS = 2000


def simultaneous_misses(cs: ConfidenceSequence, d: np.ndarray, truth: float) -> int:
    """Replications whose bound excluded the truth after some prefix: the running p-value fell below alpha."""
    return int(np.sum(cs.p_values(d, truth)[:, -1] < cs.alpha))


@pytest.mark.parametrize(
    ("method", "n", "r", "delta", "alpha"),
    [
        ("normal-mixture", 1000, 0.05, -0.05, 0.05),  # every discordant item a loss: the skewed worst case
        ("normal-mixture", 1000, 0.2, -0.03, 0.01),
        ("normal-mixture", 1000, 0.02, 0.0, 0.05),
        ("betting", 250, 0.1, -0.05, 0.05),
        ("betting", 250, 0.3, 0.0, 0.01),
        ("design-betting", 1000, 0.05, -0.05, 0.05),
        ("design-betting", 1000, 0.2, -0.03, 0.01),
        ("design-betting", 1000, 0.02, 0.0, 0.05),
        ("design-betting", 250, 0.3, 0.0, 0.01),
    ],
)
@pytest.mark.parametrize("side", ["lower", "upper"])
def test_binary_sequences_cover_at_every_prefix(
    method: str, n: int, r: float, delta: float, alpha: float, side: str
) -> None:
    rng = np.random.default_rng(SEED)
    d = draw_differences(rng, REPS, n, delta, r)
    cs = ConfidenceSequence(method, side, alpha, n, gap=0.03)  # type: ignore[arg-type]
    assert simultaneous_misses(cs, d, delta) <= stats.binom.ppf(0.999, REPS, alpha)


@pytest.mark.parametrize("method", ["normal-mixture", "betting", "design-betting"])
def test_non_binary_sequences_cover_at_every_prefix(method: str) -> None:
    """Differences of continuous scores (ROUGE-like), skewed: a Beta-distributed drop."""
    rng = np.random.default_rng(SEED)
    d = np.clip(rng.normal(0.0, 0.1, (REPS, 400)) - rng.beta(0.5, 8.0, (REPS, 400)) * 0.5, -1, 1)
    truth = -0.5 * 0.5 / 8.5
    for side in ("lower", "upper"):
        cs = ConfidenceSequence(method, side, 0.05, 400, gap=0.05)  # type: ignore[arg-type]
        assert simultaneous_misses(cs, d, truth) <= stats.binom.ppf(0.999, REPS, 0.05)


def test_a_fixed_n_bound_rechecked_at_every_prefix_does_not_cover() -> None:
    """The reason for sequences: a 95% paired z bound peeked at after every item from 200 on misses far more."""
    rng = np.random.default_rng(SEED)
    d = draw_differences(rng, REPS, 1000, 0.0, 0.1)
    t = np.arange(1, 1001)
    means = np.cumsum(d, axis=1) / t
    sd = np.sqrt(np.maximum(np.cumsum(d**2, axis=1) / t - means**2, 1e-12))
    peeking = np.any((means - 1.645 * sd / np.sqrt(t) > 0.0)[:, 199:], axis=1).mean()
    sequence = simultaneous_misses(ConfidenceSequence("normal-mixture", "lower", 0.05, 1000, 200), d, 0.0) / REPS
    assert peeking > 0.15 > 0.05 >= sequence


@pytest.mark.parametrize("method", ["normal-mixture", "betting", "design-betting"])
@pytest.mark.parametrize("side", ["lower", "upper"])
def test_bound_and_p_value_agree(method: str, side: str) -> None:
    d = draw_differences(np.random.default_rng(SEED), 1, 300, -0.02, 0.15)[0]
    cs = ConfidenceSequence(method, side, 0.05, 300, 50, gap=0.05)  # type: ignore[arg-type]
    bound = cs.bound(d)
    sign = 1 if side == "upper" else -1
    assert cs.p_value(d, bound + sign * 1e-6) < 0.05 <= cs.p_value(d, bound - sign * 1e-6)
    assert (cs.bound(d) <= d.mean()) if side == "lower" else (cs.bound(d) >= d.mean())


def test_running_intersection_never_loosens() -> None:
    d = draw_differences(np.random.default_rng(SEED), 1, 600, 0.0, 0.1)[0]
    cs = ConfidenceSequence("normal-mixture", "lower", 0.05, 600, 100)
    bounds = [cs.bound(d[:t]) for t in range(100, 601, 50)]
    assert np.all(np.diff(bounds) >= 0.0)


# --- the sequential gate's operating characteristics (a smaller bench/simulate_sequential.py) --------------

R, BUDGET = 0.1, 5.0
CLAIM_POLICY = SequentialPolicy(composite_budget=None, planning_discordance=R)
CLAIM_PLAN = plan({"t": BUDGET}, {"t": 100_000}, CLAIM_POLICY)[0]


def continuous_gate(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outcome (0 PASS, 1 FAIL, 2 WARN) and items used, looking after every item the sequences may decide at."""
    policy, cap = CLAIM_POLICY, CLAIM_PLAN.planned
    fail_alpha = policy.task_fail_alpha(1)
    fail_cs, pass_cs = policy.task_sequences(1, BUDGET, cap, policy.decides_from(cap))
    fails, passes = fail_cs.p_values(d, -BUDGET / 100), pass_cs.p_values(d, -BUDGET / 100)
    first_fail = np.where((fails < fail_alpha).any(1), (fails < fail_alpha).argmax(1), cap)
    first_pass = np.where((passes < policy.alpha_pass).any(1), (passes < policy.alpha_pass).argmax(1), cap)
    outcome = np.where(np.minimum(first_fail, first_pass) == cap, 2, np.where(first_fail <= first_pass, 1, 0))
    return outcome, np.minimum(np.minimum(first_fail, first_pass) + 1, cap)


@pytest.fixture(scope="module")
def claims() -> dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(SEED)
    out = {}
    for delta in (0.0, 1.0, -BUDGET, -2 * BUDGET):
        d = draw_differences(rng, REPS, CLAIM_PLAN.planned, delta / 100, R)
        out[delta] = (d, *continuous_gate(d))
    return out


def test_false_fail_at_the_budget_is_at_most_alpha_fail(claims: dict[float, tuple[np.ndarray, ...]]) -> None:
    """Looking after every item is stricter than the runner's batches of 50."""
    assert CLAIM_PLAN.method == "design-betting"
    assert np.sum(claims[-BUDGET][1] == 1) <= stats.binom.ppf(0.999, REPS, 0.01)
    assert np.sum(claims[0.0][1] == 1) == 0


def test_fail_power_at_twice_the_budget(claims: dict[float, tuple[np.ndarray, ...]]) -> None:
    assert CLAIM_POLICY.fail_power == 0.97
    assert stats.binom.cdf(np.sum(claims[-2 * BUDGET][1] == 1), REPS, CLAIM_POLICY.fail_power) > 0.001


def test_pass_rate_at_zero_with_the_planned_items(claims: dict[float, tuple[np.ndarray, ...]]) -> None:
    assert stats.binom.cdf(np.sum(claims[0.0][1] == 0), REPS, 0.95) > 0.001


def test_clear_cases_use_fewer_items_than_the_fixed_design(claims: dict[float, tuple[np.ndarray, ...]]) -> None:
    """Average items over the n of the fixed-n gate with the plan's powers (95% PASS at 0, 97% FAIL at -2B),
    looking after every item: today 0.39 (delta 0), 0.28 (+1), 0.36 (-2B); bench/simulate_sequential.py prints
    every cell and Wald's bound."""
    ratios = {delta: claims[delta][2].mean() / CLAIM_PLAN.fixed_n for delta in (0.0, 1.0, -2 * BUDGET)}
    assert ratios[0.0] < 0.5
    assert ratios[1.0] < 0.35
    assert ratios[-2 * BUDGET] < 0.5


def test_the_replay_agrees_with_look(claims: dict[float, tuple[np.ndarray, ...]]) -> None:
    """look() on the stopping prefix decides as the vectorised replay did; one item earlier it was pending."""
    names = {0: Outcome.PASS, 1: Outcome.FAIL, 2: Outcome.WARN}
    cap = CLAIM_PLAN.planned
    planned = {"t": cap}
    for delta in (0.0, -2 * BUDGET):
        d, outcome, items = claims[delta]
        for row, decided, n in zip(d[:5], outcome[:5], items[:5], strict=True):
            at_stop = look([task("t", row[:n], BUDGET)], CLAIM_POLICY, planned, {"t": n == cap})
            before = look([task("t", row[: n - 1], BUDGET)], CLAIM_POLICY, planned, {"t": False})
            assert at_stop.outcome is names[int(decided)]
            assert before.pending


# --- the smoke stage --------------------------------------------------------------------------------------


def test_a_catastrophic_drop_fails_at_the_first_look() -> None:
    d = draw_differences(np.random.default_rng(SEED), 1, 200, -0.4, 0.5)[0]
    verdict = look([task("arc", d)], SequentialPolicy(), {"arc": 2000}, {"arc": False})
    assert verdict.outcome is Outcome.FAIL and not verdict.pending
    assert verdict.tasks[0].reason is StopReason.CATASTROPHIC
    assert "demonstrated" in verdict.tasks[0].detail
    assert verdict.keep_scoring == ()


@pytest.mark.parametrize("delta", [-0.04, -0.08])
def test_a_mild_drop_does_not_trip_the_smoke_stage(delta: float) -> None:
    rng = np.random.default_rng(SEED)
    for row in draw_differences(rng, 50, 200, delta, max(0.1, -2 * delta)):
        assert smoke_check(task("arc", row), SequentialPolicy(), tasks=3) is None


def test_the_normal_mixture_waits_for_the_smoke_stage_the_design_bettor_does_not() -> None:
    """A clear drop that is not catastrophic: the normal mixture, valid only asymptotically, waits for the smoke
    stage's end (200 items) to FAIL; the design bettor, valid at every n, FAILs it at an earlier look."""
    d = draw_differences(np.random.default_rng(SEED), 1, 400, -0.3, 0.35)[0]
    mixture = replace(MIXTURE, catastrophic_drop=50.0)
    early = look([task("t", d[:150])], mixture, {"t": 1000}, {"t": False})
    late = look([task("t", d[:200])], mixture, {"t": 1000}, {"t": False})
    assert early.pending and early.tasks[0].reason is None
    assert late.outcome is Outcome.FAIL and late.tasks[0].reason is StopReason.FAIL
    betting = look([task("t", d[:150])], replace(SINGLE, catastrophic_drop=50.0), {"t": 1000}, {"t": False})
    assert betting.outcome is Outcome.FAIL and betting.tasks[0].reason is StopReason.FAIL


def healthy_answers(rng: np.random.Generator, n: int, choices: list[str]) -> Answers:
    base = [str(rng.choice(choices)) for _ in range(n)]
    ckpt = [a if rng.random() < 0.85 else str(rng.choice(choices)) for a in base]
    return Answers(tuple(base), tuple(ckpt))


def test_format_collapse_fires_on_one_domain_string_for_everything() -> None:
    rng = np.random.default_rng(SEED)
    base = tuple(str(rng.integers(0, 1000)) for _ in range(200))
    collapsed = Answers(base, tuple(["  The Eiffel Tower. "] * 180 + list(base[180:])))
    detail = format_collapse(collapsed, SequentialPolicy(), alpha=1e-4)
    assert detail is not None and "'the eiffel tower'" in detail and "90%" in detail
    d = np.zeros(200)  # the collapse is caught from the strings, whatever the scores say
    finding = smoke_check(task("gsm", d), SequentialPolicy(), tasks=1, answers=collapsed)
    assert finding is not None and finding.reason is StopReason.COLLAPSE


def test_format_collapse_fires_on_a_jump_in_parse_failures() -> None:
    rng = np.random.default_rng(SEED)
    base = tuple(str(rng.integers(0, 1000)) for _ in range(200))
    broken = Answers(base, tuple(None if i % 5 else a for i, a in enumerate(base)))
    assert "unparseable on 80%" in (format_collapse(broken, SequentialPolicy(), alpha=1e-4) or "")


@pytest.mark.parametrize(
    "choices",
    [[str(i) for i in range(500)], ["A", "B", "C", "D"], ["yes"] * 6 + ["no"] * 4],
    ids=["numbers", "multiple-choice", "yes-no"],
)
def test_healthy_varied_answers_do_not_collapse(choices: list[str]) -> None:
    rng = np.random.default_rng(SEED)
    for _ in range(20):
        assert format_collapse(healthy_answers(rng, 200, choices), SequentialPolicy(), alpha=1e-4) is None


def test_answer_normalisation() -> None:
    assert normalise_answer("  The  Answer is: PARIS.\n") == "the answer is: paris"
    assert normalise_answer(" ... ") is None
    assert normalise_answer(None) is None
    with pytest.raises(ValueError, match="per item"):
        Answers(("a",), ())


# --- the look's rules and edge cases ---------------------------------------------------------------------


def test_identical_scores_pass_once_the_smoke_stage_is_over() -> None:
    d = np.zeros(600)
    early = look([task("same", d[:100])], SINGLE, {"same": 600}, {"same": False})
    assert early.pending and early.tasks[0].decision.p_fail == 1.0
    verdict = look([task("same", d)], SINGLE, {"same": 600}, {"same": False})
    decision = verdict.tasks[0].decision
    assert verdict.outcome is Outcome.PASS and verdict.tasks[0].reason is StopReason.PASS
    assert (decision.delta, decision.discordance) == (0.0, 0.0)
    assert -3.0 < decision.lower <= 0.0 <= decision.upper


def test_a_single_item_decides_nothing() -> None:
    for d in ([1.0], [-1.0], [0.0]):
        verdict = look([task("one", np.array(d))], SequentialPolicy(), {"one": 1000}, {"one": False})
        assert verdict.pending and verdict.outcome is None
        assert -100.0 <= verdict.tasks[0].decision.lower <= verdict.tasks[0].decision.upper <= 100.0
        exhausted = look([task("one", np.array(d))], SequentialPolicy(), {"one": 1}, {"one": True})
        assert exhausted.outcome is Outcome.WARN and exhausted.tasks[0].reason is StopReason.EXHAUSTED


def test_non_binary_scores_run_the_sequence_on_raw_differences() -> None:
    rng = np.random.default_rng(SEED)
    base = rng.random(800)
    ckpt = np.clip(base + rng.normal(0.0, 0.05, 800), 0.0, 1.0)
    for policy in (SINGLE, MIXTURE):
        verdict = look([TaskEvidence("rouge", base, ckpt, 3.0)], policy, {"rouge": 800}, {"rouge": False})
        decision = verdict.tasks[0].decision
        assert decision.method == policy.sequence and verdict.outcome is Outcome.PASS
        assert decision.lower < decision.delta < decision.upper


def test_clusters_are_the_units_in_order_of_first_appearance() -> None:
    units, items = sequence_units([1.0, 0.0, -1.0, 1.0, 0.0], np.array(["b", "a", "b", "c", "a"]))
    np.testing.assert_allclose(units, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(items, [2, 2, 1])
    d = draw_differences(np.random.default_rng(SEED), 1, 1200, 0.0, 0.1)[0]
    clusters = np.repeat(np.arange(300), 4)
    verdict = look([task("boolq", d, clusters=clusters)], SINGLE, {"boolq": 300}, {"boolq": False})
    decision = verdict.tasks[0].decision
    assert (decision.method, decision.n, decision.n_items) == ("cluster-design-betting", 300, 1200)
    mixture = look([task("boolq", d, clusters=clusters)], MIXTURE, {"boolq": 300}, {"boolq": False})
    assert mixture.tasks[0].decision.method == "cluster-normal-mixture"
    small = look([task("boolq", d, clusters=clusters)], MIXTURE, {"boolq": 250}, {"boolq": False})
    assert small.tasks[0].decision.method == "cluster-betting"


def test_small_tasks_use_the_betting_sequence_beside_the_normal_mixture() -> None:
    d = draw_differences(np.random.default_rng(SEED), 1, 250, 0.0, 0.05)[0]
    verdict = look([task("small", d, budget=5.0)], MIXTURE, {"small": 250}, {"small": True})
    assert verdict.tasks[0].decision.method == "betting"
    assert verdict.outcome is Outcome.PASS


def test_the_gate_stops_at_the_first_fail_and_waits_while_anything_is_pending() -> None:
    rng = np.random.default_rng(SEED)
    benign, dropped = draw_differences(rng, 2, 1500, 0.0, 0.1)[0], draw_differences(rng, 1, 1500, -0.15, 0.2)[0]
    planned, exhausted = {"a": 1500, "b": 1500}, {"a": False, "b": False}
    pending = look([task("a", benign[:200]), task("b", benign[:200])], SequentialPolicy(), planned, exhausted)
    assert pending.pending and pending.outcome is None and pending.keep_scoring == ("a", "b")
    failed = look([task("a", benign[:200]), task("b", dropped[:400])], SequentialPolicy(), planned, exhausted)
    assert failed.outcome is Outcome.FAIL and not failed.pending and failed.keep_scoring == ()
    assert failed.tasks[1].reason is StopReason.FAIL and failed.tasks[0].pending


def test_a_look_on_the_tasks_reached_so_far_keeps_the_whole_gates_levels() -> None:
    """Given two of a gate's three tasks (a FAIL stopped the runner before the third), a look tests at the
    three-task family's levels: the same bounds and adjusted p-values as with the third task there, never a PASS,
    and no composite until every task has items."""
    rng = np.random.default_rng(SEED)
    dropped, other = draw_differences(rng, 2, 400, -0.15, 0.2)
    benign = draw_differences(rng, 1, 400, 0.0, 0.1)[0]
    planned, exhausted = dict.fromkeys("abc", 400), dict.fromkeys("abc", False)
    two = [task("a", benign, budget=8.0), task("b", dropped)]
    whole = look([*two, task("c", other)], SequentialPolicy(), planned, exhausted)
    partial = look(two, SequentialPolicy(), planned, exhausted, tasks=3)
    assert partial.outcome is whole.outcome is Outcome.FAIL and partial.composite is None
    assert [t.decision for t in partial.tasks] == [t.decision for t in whole.tasks[:2]]
    alone = look(two, SequentialPolicy(), planned, exhausted)  # a gate of two: looser levels
    assert alone.tasks[1].decision.p_fail_adjusted < partial.tasks[1].decision.p_fail_adjusted
    quiet = look([two[0]], SequentialPolicy(), planned, {**exhausted, "a": True}, tasks=3)
    assert quiet.tasks[0].reason is StopReason.PASS and quiet.pending and quiet.outcome is None
    assert quiet.composite is None and quiet.keep_scoring == ()


def test_fail_evidence_builds_a_look_before_it_fails_and_rarely_at_the_budget_edge() -> None:
    """The runner scores a task again at once while its FAIL evidence is "building" (p_fail below the root of its
    level). A forgetful-sized drop (-60 points, core's facts budget 17, 7 tasks) builds at the first look of 25
    items and FAILs by 50; at the budget's edge (Delta = -B), Ville's inequality allows building at any of the
    looks in at most sqrt(level) of the runs, and at Delta = 0 it should not happen at all."""
    rng, policy, reps, looks = np.random.default_rng(SEED), SequentialPolicy(), 150, (25, 50, 75, 100)

    def outlooks(delta: float, r: float) -> list[list[str]]:
        rows = draw_differences(rng, reps, looks[-1], delta, r)
        return [[fail_outlook(task("t", row[:n], 17.0), policy, 7, 60, False) for n in looks] for row in rows]

    forgetful = outlooks(-0.6, 0.62)
    assert sum(o[0] != "quiet" for o in forgetful) >= 0.8 * reps
    assert sum(o[1] == "failed" for o in forgetful) >= 0.9 * reps
    most = stats.binom.ppf(0.999, reps, math.sqrt(policy.task_fail_alpha(7)))
    edge = outlooks(-0.17, 0.3)
    assert sum("building" in o for o in edge) <= most and sum("failed" in o for o in edge) <= most
    assert not any("building" in o or "failed" in o for o in outlooks(0.0, 0.15))


def test_warn_when_a_pool_runs_out_undecided_and_pass_when_all_pass() -> None:
    rng = np.random.default_rng(SEED)
    clean = np.zeros(1000)
    borderline = draw_differences(rng, 1, 300, -0.03, 0.1)[0]
    planned = {"a": 1000, "b": 300}
    warn = look([task("a", clean), task("b", borderline)], SINGLE, planned, {"a": False, "b": True})
    assert [t.reason for t in warn.tasks] == [StopReason.PASS, StopReason.EXHAUSTED]
    assert warn.outcome is Outcome.WARN and not warn.pending
    both = look([task("a", clean), task("b", clean[:300])], SINGLE, planned, {"a": False, "b": True})
    assert both.outcome is Outcome.PASS


def test_a_pending_composite_keeps_decided_tasks_scoring() -> None:
    """Both tasks PASS their 3-point budgets but the 1.5-point composite needs more items."""
    rng = np.random.default_rng(SEED)
    d = draw_differences(rng, 2, 1500, 0.0, 0.1)
    planned, exhausted = {"a": 1500, "b": 3000}, {"a": True, "b": False}
    verdict = look([task("a", d[0]), task("b", d[1])], SequentialPolicy(), planned, exhausted)
    assert [t.reason for t in verdict.tasks] == [StopReason.PASS, StopReason.PASS]
    assert verdict.composite is not None and verdict.composite.pending
    assert verdict.composite.decision.name == COMPOSITE and verdict.composite.decision.method == "normal-mixture"
    assert verdict.pending and verdict.keep_scoring == ("b",)


def test_look_is_stateless() -> None:
    d = draw_differences(np.random.default_rng(SEED), 1, 700, -0.01, 0.1)[0]
    args = ([task("a", d)], SequentialPolicy(), {"a": 2000}, {"a": False})
    assert look(*args) == look(*args)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"planned": {}}, "planned has no entry"),
        ({"exhausted": {}}, "exhausted has no entry"),
        ({"planned": {"a": 0}}, "at least 1"),
        ({"answers": {"zz": Answers((), ())}}, "unknown task"),
        ({"answers": {"a": Answers(("x",), ("y",))}}, "1 answers for 10"),
        ({"tasks": 0}, "fewer tasks than evidence"),
    ],
)
def test_look_refuses_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "evidence": [task("a", np.zeros(10))],
        "policy": SINGLE,
        "planned": {"a": 10},
        "exhausted": {"a": False},
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        look(**arguments)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique"):
        look([task(COMPOSITE, np.zeros(5))], SequentialPolicy(), {COMPOSITE: 5}, {COMPOSITE: False})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha_fail": 0.0},
        {"smoke_share": 1.0},
        {"smoke_items": 0},
        {"catastrophic_drop": 0.0},
        {"collapse_share": 0.0},
        {"composite_budget": 0.0},
    ],
)
def test_bad_policy_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SequentialPolicy(**kwargs)  # type: ignore[arg-type]


# --- planning ---------------------------------------------------------------------------------------------


def test_plan_rows() -> None:
    policy = SequentialPolicy()
    pilot = task("b", draw_differences(np.random.default_rng(SEED), 1, 200, 0.0, 0.3)[0])
    budgets = {"a": 3.0, "b": 3.0, "c": 1.0, "d": 5.0}
    rows = {row.name: row for row in plan(budgets, {"a": 5000, "b": 5000, "c": 2000, "d": 250}, policy, [pilot])}
    a, b, c, d = rows["a"], rows["b"], rows["c"], rows["d"]
    assert (a.discordance, a.measured) == (0.1, False)
    assert b.measured and b.discordance == pytest.approx(0.3, abs=0.07) and b.needed > a.needed
    assert a.needed > a.fixed_n and a.planned == min(a.needed, a.cap) and a.certified
    assert a.detectable > 2 * a.budget - 0.5
    assert not c.certified and c.planned == c.cap == 2000  # a 1-point budget needs more than 2,000 items
    assert d.method == "design-betting" and d.planned == 250
    small = plan(budgets, {"a": 5000, "b": 5000, "c": 2000, "d": 250}, replace(policy, sequence="normal-mixture"))
    assert small[3].method == "betting"


def test_an_identical_pilot_does_not_plan_a_single_item() -> None:
    row = plan({"a": 3.0}, {"a": 10_000}, SequentialPolicy(), [task("a", np.zeros(200))])[0]
    assert row.measured and row.discordance == pytest.approx(3 / 200)
    assert row.planned >= SequentialPolicy().smoke_items


@given(st.floats(0.5, 10.0), st.floats(0.0, 0.5), st.sampled_from([0.003, 0.05]), st.floats(0.6, 0.99))
def test_sequence_planning_functions_invert_each_other(budget: float, r: float, alpha: float, power: float) -> None:
    n = sequence_pass_units(budget, r, alpha, power, "normal-mixture")
    assert sequence_certifiable(n, r, alpha, power, "normal-mixture") <= budget + 1e-6
    if n > 1:
        assert sequence_certifiable(n - 1, r, alpha, power, "normal-mixture") > budget - 1e-6
    n_fail = sequence_required_units(budget, r, alpha, power, "normal-mixture")
    assert sequence_detectable(n_fail, r, alpha, power, budget, "normal-mixture") <= 2 * budget + 1e-9


def test_the_pass_plan_carries_tangos_null_variance() -> None:
    """At r = 0.05, B = 5 the first-order plan (437 units) PASSed 94.5% of benign checkpoints in the bench."""
    first_order = sequence_required_units(5.0, 0.05, 0.05, 0.95, "normal-mixture")
    assert sequence_pass_units(5.0, 0.05, 0.05, 0.95, "normal-mixture") > 1.2 * first_order
    small_budget = sequence_required_units(0.5, 0.2, 0.05, 0.95, "normal-mixture")
    assert sequence_pass_units(0.5, 0.2, 0.05, 0.95, "normal-mixture") == pytest.approx(small_budget, rel=0.02)


def test_the_design_bet_is_the_growth_optimal_one() -> None:
    """ternary_kelly_bet's root against a fine grid of the expected log growth, over random laws and nulls."""
    rng = np.random.default_rng(SEED)
    for _ in range(200):
        m = rng.uniform(-0.6, 0.6)
        aim = min(m + rng.uniform(0.005, 0.5), 0.999)
        second_moment = max(rng.uniform(0.0, 1.0), abs(aim))
        most = 0.8 / (1.0 + m)
        up, down = (second_moment + aim) / 2, (second_moment - aim) / 2
        bets = np.linspace(0.0, most, 20_001)
        tie = 1 - up - down
        growth = up * np.log1p(bets * (1 - m)) + tie * np.log1p(-bets * m) + down * np.log1p(-bets * (1 + m))
        bet = float(ternary_kelly_bet(aim, second_moment, m, most))
        assert 0.0 <= bet <= most
        assert abs(bet - bets[np.argmax(growth)]) <= most / 20_000 + 1e-9
