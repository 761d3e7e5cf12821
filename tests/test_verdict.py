"""gate.verdict: the decision rules, edge cases, Holm over tasks + composite, the composite's reach, and
error rates of the whole decision measured by seeded Monte-Carlo on per-item paired binary data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from gate.decision import COMPOSITE, Outcome, TaskDecision
from gate.stats import (
    certifiable_budget,
    detectable_regression,
    paired_wald,
    required_items,
    tango_p_below,
    tango_required_items,
)
from gate.verdict import MIN_UNITS_TO_ESTIMATE_DISCORDANCE, Policy, TaskEvidence, decide

SEED = 20240611
SINGLE = Policy(composite_budget=None)


def from_counts(n_up: int, n_down: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """0/1 scores where exactly n_up items go base-wrong -> ckpt-right and n_down the other way."""
    same = np.arange(n - n_up - n_down) % 2
    base = np.concatenate([np.ones(n_down), np.zeros(n_up), same])
    ckpt = np.concatenate([np.zeros(n_down), np.ones(n_up), same])
    return base, ckpt


def task(name: str, n_up: int, n_down: int, n: int, budget: float = 3.0, weight: float = 1.0) -> TaskEvidence:
    base, ckpt = from_counts(n_up, n_down, n)
    return TaskEvidence(name=name, base=base, ckpt=ckpt, budget=budget, weight=weight)


def simulate_items(
    rng: np.random.Generator, reps: int, n: int, delta: float, discordance: float, base_accuracy: float = 0.6
) -> tuple[np.ndarray, np.ndarray]:
    """(reps, n) 0/1 scores drawn item by item: P(base, ckpt = 1, 0) = (r - delta)/2, P(0, 1) = (r + delta)/2
    and P(base = 1) = base_accuracy, so that E[ckpt - base] = delta and P(ckpt != base) = r."""
    p10, p01 = (discordance - delta) / 2, (discordance + delta) / 2
    p11 = base_accuracy - p10
    cells = rng.choice(4, size=(reps, n), p=[p11, p10, p01, 1.0 - p11 - p10 - p01])
    base = (cells <= 1).astype(float)
    ckpt = ((cells == 0) | (cells == 2)).astype(float)
    return base, ckpt


def all_decisions(evidence: list[TaskEvidence], policy: Policy) -> list[TaskDecision]:
    verdict = decide(evidence, policy)
    return list(verdict.tasks) + ([verdict.composite] if verdict.composite else [])


# --- edge cases ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["tango", "wald"])
def test_identical_scores_pass_with_enough_items(method: str) -> None:
    base = (np.random.default_rng(SEED).random(500) < 0.6).astype(float)
    decision = decide([TaskEvidence("same", base, base.copy(), 3.0)], Policy(method=method)).tasks[0]
    assert decision.method == method
    assert (decision.delta, decision.discordance) == (0.0, 0.0)
    assert decision.outcome is Outcome.PASS
    assert all(
        math.isfinite(v) for v in (decision.lower, decision.upper, decision.p_fail, decision.detectable)
    )
    assert decision.lower <= 0.0 <= decision.upper


@pytest.mark.parametrize(
    ("scores", "expected"), [(np.ones(200), Outcome.PASS), (np.zeros(200), Outcome.PASS)]
)
def test_all_correct_and_all_wrong_on_both_sides(scores: np.ndarray, expected: Outcome) -> None:
    decision = decide([TaskEvidence("t", scores, scores.copy(), 3.0)], SINGLE).tasks[0]
    assert decision.outcome is expected
    assert decision.base_score == decision.ckpt_score


@pytest.mark.parametrize("method", ["tango", "wald"])
def test_single_item_decides_nothing(method: str) -> None:
    for base, ckpt in [([1.0], [1.0]), ([1.0], [0.0]), ([0.0], [1.0])]:
        decision = decide([TaskEvidence("one", np.array(base), np.array(ckpt), 3.0)], Policy(method=method))
        assert decision.tasks[0].outcome is Outcome.WARN
        assert -100.0 <= decision.tasks[0].lower <= decision.tasks[0].upper <= 100.0


def test_collapse_fails() -> None:
    decision = decide([TaskEvidence("t", np.ones(50), np.zeros(50), 3.0)], SINGLE).tasks[0]
    assert decision.delta == -100.0
    assert decision.outcome is Outcome.FAIL


def test_non_binary_scores_use_the_paired_t_test() -> None:
    rng = np.random.default_rng(SEED)
    base = rng.random(300)
    ckpt = np.clip(base + rng.normal(0.0, 0.05, 300), 0.0, 1.0)
    decision = decide([TaskEvidence("rouge", base, ckpt, 3.0)], SINGLE).tasks[0]
    reference = paired_wald(ckpt - base)
    assert decision.method == "wald"
    assert decision.delta == pytest.approx(100 * reference.delta)
    assert decision.p_fail == pytest.approx(reference.p_below(-0.03))
    assert decision.lower == pytest.approx(100 * reference.bound(0.05, "lower"))


def test_clusters_count_units_and_use_the_cluster_robust_test() -> None:
    base, ckpt = from_counts(40, 60, 400)
    clusters = np.repeat([f"passage{i}" for i in range(100)], 4)
    decision = decide([TaskEvidence("boolq", base, ckpt, 3.0, clusters=clusters)], SINGLE).tasks[0]
    assert (decision.method, decision.n, decision.n_items) == ("cluster-wald", 100, 400)
    assert decision.delta == pytest.approx(-5.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": np.array([]), "ckpt": np.array([])}, "no items"),
        ({"base": np.ones(3), "ckpt": np.ones(4)}, "same items"),
        ({"ckpt": np.array([1.0, 1.5, 0.0])}, r"\[0, 1\]"),
        ({"budget": 0.0}, "budget"),
        ({"budget": 101.0}, "budget"),
        ({"weight": 0.0}, "weight"),
        ({"weight": math.nan}, "weight"),
        ({"clusters": np.array([1, 2])}, "one id per item"),
    ],
)
def test_bad_evidence_is_refused(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"name": "t", "base": np.ones(3), "ckpt": np.ones(3), "budget": 3.0}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        TaskEvidence(**arguments)  # type: ignore[arg-type]


def test_decide_refuses_no_tasks_and_clashing_names() -> None:
    with pytest.raises(ValueError, match="no tasks"):
        decide([])
    with pytest.raises(ValueError, match="unique"):
        decide([task("a", 0, 0, 10), task("a", 0, 0, 10)])
    with pytest.raises(ValueError, match=COMPOSITE):
        decide([task(COMPOSITE, 0, 0, 10)])
    assert decide([task(COMPOSITE, 0, 0, 10)], SINGLE).composite is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha_fail": 0.0},
        {"alpha_pass": 0.5},
        {"power": 1.0},
        {"planning_discordance": 0.0},
        {"composite_budget": -1.0},
        {"method": "naive"},
    ],
)
def test_bad_policy_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Policy(**kwargs)  # type: ignore[arg-type]


def test_evidence_keeps_a_read_only_copy() -> None:
    base, ckpt = from_counts(0, 0, 10)
    evidence = TaskEvidence("t", base, ckpt, 3.0)
    base[:] = 0.0
    assert evidence.base.sum() == 5.0
    assert not evidence.base.flags.writeable


# --- the rules --------------------------------------------------------------------------------------------


def test_a_drop_beyond_budget_alone_is_not_a_fail() -> None:
    """The rejected naive rule would FAIL this: 4 points down on 100 items is well within the noise."""
    decision = decide([task("t", 3, 7, 100)], SINGLE).tasks[0]
    assert decision.delta == pytest.approx(-4.0)
    assert decision.outcome is Outcome.WARN


@st.composite
def binary_tasks(draw: st.DrawFn) -> list[TaskEvidence]:
    evidence = []
    for index in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 1500))
        n_down = draw(st.integers(0, min(n, 200)))
        n_up = draw(st.integers(0, min(n - n_down, 200)))
        budget = draw(st.sampled_from([1.0, 3.0, 5.0]))
        evidence.append(task(f"t{index}", n_up, n_down, n, budget, draw(st.sampled_from([1.0, 2.0]))))
    return evidence


@given(binary_tasks(), st.sampled_from(["tango", "wald"]), st.sampled_from([None, 1.5]))
@settings(max_examples=60, deadline=None)
def test_outcomes_follow_the_bounds(
    evidence: list[TaskEvidence], method: str, composite: float | None
) -> None:
    """FAIL iff the upper bound at Holm's level is below -B; PASS iff not FAIL and the lower one clears -B."""
    policy = Policy(method=method, composite_budget=composite)
    verdict = decide(evidence, policy)
    decisions = all_decisions(evidence, policy)
    for d in decisions:
        assert d.lower <= d.delta + 1e-9 and d.delta <= d.upper + 1e-9
        assert d.p_fail <= d.p_fail_adjusted <= 1.0
        if abs(d.upper + d.budget) > 1e-6 and abs(d.lower + d.budget) > 1e-6:
            assert (d.outcome is Outcome.FAIL) == (d.upper < -d.budget)
            assert (d.outcome is Outcome.PASS) == (d.upper >= -d.budget and d.lower > -d.budget)
    outcomes = {d.outcome for d in decisions}
    expected = (
        Outcome.FAIL
        if Outcome.FAIL in outcomes
        else Outcome.PASS
        if outcomes == {Outcome.PASS}
        else Outcome.WARN
    )
    assert verdict.outcome is expected


def test_holm_steps_down_to_a_second_regression() -> None:
    """Raw p = 0.0038 is above alpha/3, below alpha/2: it FAILs only once the clear regression is rejected."""
    clear = task("clear", 10, 150, 1000)
    moderate = task("moderate", 30, 88, 1000)
    benign = task("benign", 50, 50, 1000)
    assert 0.01 / 3 < float(tango_p_below(30, 88, 1000, -0.03)) < 0.01 / 2
    verdict = decide([clear, moderate, benign], SINGLE)
    assert [d.outcome for d in verdict.tasks] == [Outcome.FAIL, Outcome.FAIL, Outcome.PASS]
    without_clear = decide([task("clear", 50, 50, 1000), moderate, benign], SINGLE)
    assert without_clear.tasks[1].outcome is not Outcome.FAIL
    assert without_clear.tasks[1].p_fail_adjusted == pytest.approx(3 * without_clear.tasks[1].p_fail)


def test_holm_protects_the_family() -> None:
    """Raw p = 0.0063 FAILs a gate of one task, not a gate of four where the other three are benign."""
    suspect = task("suspect", 30, 86, 1000)
    assert decide([suspect], SINGLE).tasks[0].outcome is Outcome.FAIL
    others = [task(f"benign{i}", 50, 50, 1000) for i in range(3)]
    assert decide([suspect, *others], SINGLE).tasks[0].outcome is Outcome.WARN


def test_composite_catches_broad_small_forgetting() -> None:
    """Five tasks each 2.5 points down, inside their 3-point budgets: no task can show a regression beyond its
    budget, but together they show the average is beyond the composite's 1.5 points."""
    evidence = [task(f"t{i}", 75, 125, 2000) for i in range(5)]
    verdict = decide(evidence)
    assert all(d.outcome is Outcome.WARN for d in verdict.tasks)
    assert verdict.composite is not None
    assert verdict.composite.delta == pytest.approx(-2.5)
    assert verdict.composite.outcome is Outcome.FAIL
    assert verdict.outcome is Outcome.FAIL
    assert decide(evidence, SINGLE).outcome is Outcome.WARN


def test_composite_is_the_weighted_mean_with_independent_variances() -> None:
    evidence = [task("a", 10, 30, 1000, weight=3.0), task("b", 20, 20, 500, weight=1.0)]
    composite = decide(evidence).composite
    assert composite is not None
    assert composite.delta == pytest.approx((3 * -2.0 + 1 * 0.0) / 4)
    assert (composite.n, composite.n_items, composite.method) == (1500, 1500, "wald")
    se_a, se_b = (paired_wald(e.ckpt - e.base).se for e in evidence)
    se = math.sqrt(9 * se_a**2 + se_b**2) / 4
    assert composite.p_fail == pytest.approx(stats.norm.cdf((composite.delta / 100 + 0.015) / se), rel=1e-9)


def test_planning_numbers_use_the_observed_discordance_or_the_planning_value() -> None:
    policy = Policy(power=0.8, planning_discordance=0.2)
    big, small = decide([task("big", 60, 90, 1500), task("small", 1, 2, 40)], policy).tasks
    family = 3  # two tasks and the composite
    assert big.detectable == pytest.approx(detectable_regression(1500, 0.1, 0.01 / family, 0.8, 3.0))
    assert big.certifiable == pytest.approx(certifiable_budget(1500, 0.1, 0.05, 0.8))
    assert small.n < MIN_UNITS_TO_ESTIMATE_DISCORDANCE
    assert small.detectable == pytest.approx(detectable_regression(40, 0.2, 0.01 / family, 0.8, 3.0))


# --- Monte-Carlo through decide() --------------------------------------------------------------------------

REPS = 300
R, BUDGET = 0.1, 3.0


def planned_items(method: str) -> int:
    pass_plan = tango_required_items if method == "tango" else required_items
    return max(pass_plan(BUDGET, R, 0.05, 0.95), required_items(BUDGET, R, 0.01, 0.9))


def outcome_counts(method: str, delta_points: float) -> dict[Outcome, int]:
    rng = np.random.default_rng(SEED)
    n = planned_items(method)
    base, ckpt = simulate_items(rng, REPS, n, delta_points / 100, R)
    counts = dict.fromkeys(Outcome, 0)
    for b, c in zip(base, ckpt, strict=True):
        counts[
            decide([TaskEvidence("t", b, c, BUDGET)], Policy(method=method, composite_budget=None)).outcome
        ] += 1
    return counts


@pytest.mark.parametrize("method", ["tango", "wald"])
def test_benign_checkpoints_pass_at_the_planned_n(method: str) -> None:
    passes = outcome_counts(method, 0.0)[Outcome.PASS]
    assert stats.binom.cdf(passes, REPS, 0.95) > 0.001


@pytest.mark.parametrize("method", ["tango", "wald"])
def test_false_fail_at_the_budget_is_at_most_alpha(method: str) -> None:
    assert outcome_counts(method, -BUDGET)[Outcome.FAIL] <= stats.binom.ppf(0.999, REPS, 0.01)


@pytest.mark.parametrize("method", ["tango", "wald"])
def test_twice_the_budget_fails_at_the_planned_n(method: str) -> None:
    fails = outcome_counts(method, -2 * BUDGET)[Outcome.FAIL]
    assert stats.binom.cdf(fails, REPS, 0.9) > 0.001


def test_simulated_items_have_the_requested_delta_and_discordance() -> None:
    base, ckpt = simulate_items(np.random.default_rng(SEED), 50, 2000, -0.03, 0.1)
    d = ckpt - base
    assert d.mean() == pytest.approx(-0.03, abs=0.002)
    assert np.mean(d != 0) == pytest.approx(0.1, abs=0.003)
    assert base.mean() == pytest.approx(0.6, abs=0.005)
