"""Budgets + paired bounds -> PASS / FAIL / WARN per task, for the composite, and overall (fixed-n mode).

FAIL_k when the Holm-adjusted one-sided p-value of H0: Delta_k >= -B_k is below alpha_fail (family: the
tasks and the composite); PASS_k when the one-sided (1 - alpha_pass) lower bound of Delta_k is above -B_k;
otherwise WARN. There is deliberately no rule on the raw drop: it fails benign checkpoints half the time
at the boundary.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from gate.decision import COMPOSITE, Outcome, TaskDecision
from gate.stats import (
    PairedEstimate,
    Side,
    effective_discordance,
    holm_adjust,
    holm_levels,
    is_binary,
    paired_differences,
    paired_wald,
    planning_margin,
    tango_bound,
    tango_p_below,
    unit_labels,
)

# Below this many units (items or clusters) the observed discordance is too noisy to plan with
# (the smoke stage's first 100 items); Policy.planning_discordance stands in for it.
MIN_UNITS_TO_ESTIMATE_DISCORDANCE = 100


@dataclass(frozen=True, eq=False)  # arrays have no single truth value: compare evidence by identity
class TaskEvidence:
    """Per-item scores of the base model and the checkpoint on the same items, with the task's budget.

    Scores are floats in [0, 1] (0/1 for accuracy), aligned item by item; budget is the non-inferiority margin
    in points (3.0 == 0.03); clusters optionally gives a cluster id per item (items sharing a passage).
    Construction validates everything and stores read-only copies of the arrays (scores as floats).
    """

    name: str
    base: np.ndarray
    ckpt: np.ndarray
    budget: float
    weight: float = 1.0
    clusters: np.ndarray | None = None

    def __post_init__(self) -> None:
        paired_differences(self.base, self.ckpt)
        if not 0.0 < self.budget <= 100.0:
            raise ValueError(f"task {self.name}: budget must be in (0, 100] points, got {self.budget!r}")
        if not (math.isfinite(self.weight) and self.weight > 0.0):
            raise ValueError(f"task {self.name}: weight must be positive and finite, got {self.weight!r}")
        copies = {
            "base": np.array(self.base, dtype=np.float64),
            "ckpt": np.array(self.ckpt, dtype=np.float64),
        }
        if self.clusters is not None:
            unit_labels(copies["base"].size, self.clusters)
            copies["clusters"] = np.array(self.clusters)
        for attr, copy in copies.items():
            copy.flags.writeable = False
            object.__setattr__(self, attr, copy)


@dataclass(frozen=True)
class Policy:
    """Error rates, composite budget and planning inputs of a fixed-n gate.

    alpha_fail is family-wise over the tasks and the composite (Holm); alpha_pass applies per task with no
    correction (intersection-union). method picks Tango's score test or the paired Wald test for 0/1 scores;
    other scores and clustered tasks always use the (cluster-robust) paired Wald t-test.
    """

    alpha_fail: float = 0.01
    alpha_pass: float = 0.05
    composite_budget: float | None = 1.5
    power: float = 0.8
    planning_discordance: float = 0.1
    method: str = "tango"

    def __post_init__(self) -> None:
        for label, value in (("alpha_fail", self.alpha_fail), ("alpha_pass", self.alpha_pass)):
            if not 0.0 < value < 0.5:
                raise ValueError(f"{label} must lie strictly between 0 and 0.5, got {value!r}")
        if not 0.0 < self.power < 1.0:
            raise ValueError(f"power must lie strictly between 0 and 1, got {self.power!r}")
        if not 0.0 < self.planning_discordance <= 1.0:
            raise ValueError(f"planning_discordance must be in (0, 1], got {self.planning_discordance!r}")
        if self.composite_budget is not None and not 0.0 < self.composite_budget <= 100.0:
            raise ValueError(
                f"composite_budget must be in (0, 100] points or None, got {self.composite_budget!r}"
            )
        if self.method not in ("tango", "wald"):
            raise ValueError(f"method must be 'tango' or 'wald', got {self.method!r}")


@dataclass(frozen=True)
class Verdict:
    """The gate's decision: overall outcome, per-task decisions, the composite (None when disabled)."""

    outcome: Outcome
    tasks: tuple[TaskDecision, ...]
    composite: TaskDecision | None
    policy: Policy


@dataclass(frozen=True)
class _Fit:
    """One member of the Holm family before multiplicity is applied (proportion scale)."""

    name: str
    n: int
    n_items: int
    base: float
    ckpt: float
    budget: float
    discordance: float
    method: str
    p_fail: float
    wald: PairedEstimate
    planning_se: float
    bound: Callable[[float, Side], float]


def _fit_task(evidence: TaskEvidence, policy: Policy) -> _Fit:
    d = paired_differences(evidence.base, evidence.ckpt)
    margin = evidence.budget / 100.0
    wald = paired_wald(d, evidence.clusters)
    units = int(unit_labels(d.size, evidence.clusters).max()) + 1
    discordance = float(np.mean(d != 0.0))
    if evidence.clusters is not None:
        method = "cluster-wald"
    elif policy.method == "tango" and is_binary(evidence.base) and is_binary(evidence.ckpt):
        method = "tango"
    else:
        method = "wald"
    if method == "tango":
        n_up, n_down = int(np.sum(d > 0.0)), int(np.sum(d < 0.0))
        p_fail = float(tango_p_below(n_up, n_down, d.size, -margin))
        bound: Callable[[float, Side], float] = partial(tango_bound, n_up, n_down, d.size)
    else:
        p_fail = wald.p_below(-margin)
        bound = wald.bound
    if units >= MIN_UNITS_TO_ESTIMATE_DISCORDANCE:
        r = effective_discordance(d, evidence.clusters)
    else:
        r = policy.planning_discordance
    return _Fit(
        name=evidence.name,
        n=units,
        n_items=d.size,
        base=float(evidence.base.mean()),
        ckpt=float(evidence.ckpt.mean()),
        budget=evidence.budget,
        discordance=discordance,
        method=method,
        p_fail=p_fail,
        wald=wald,
        planning_se=math.sqrt(r / units),
        bound=bound,
    )


def _fit_composite(fits: Sequence[_Fit], weights: Sequence[float], budget: float) -> _Fit:
    """Weighted mean of the task deltas; tasks score different items, so their variances add."""
    w = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))

    def combine(values: Sequence[float]) -> float:
        return float(np.dot(w, values))

    def combine_se(ses: Sequence[float]) -> float:
        return math.sqrt(float(np.dot(w**2, np.square(ses))))

    wald = PairedEstimate(
        delta=combine([f.wald.delta for f in fits]), se=combine_se([f.wald.se for f in fits])
    )
    n_items = sum(f.n_items for f in fits)
    return _Fit(
        name=COMPOSITE,
        n=sum(f.n for f in fits),
        n_items=n_items,
        base=combine([f.base for f in fits]),
        ckpt=combine([f.ckpt for f in fits]),
        budget=budget,
        discordance=sum(f.discordance * f.n_items for f in fits) / n_items,
        method="wald",
        p_fail=wald.p_below(-budget / 100.0),
        wald=wald,
        planning_se=combine_se([f.planning_se for f in fits]),
        bound=wald.bound,
    )


def _decide_one(fit: _Fit, p_adjusted: float, level: float, family: int, policy: Policy) -> TaskDecision:
    lower = 100.0 * fit.bound(policy.alpha_pass, "lower")
    if p_adjusted < policy.alpha_fail:
        outcome = Outcome.FAIL
    elif lower > -fit.budget:
        outcome = Outcome.PASS
    else:
        outcome = Outcome.WARN
    se_points = 100.0 * fit.planning_se
    return TaskDecision(
        name=fit.name,
        n=fit.n,
        base_score=100.0 * fit.base,
        ckpt_score=100.0 * fit.ckpt,
        delta=100.0 * (fit.ckpt - fit.base),
        lower=lower,
        upper=100.0 * fit.bound(level, "upper"),
        p_fail=fit.p_fail,
        p_fail_adjusted=p_adjusted,
        budget=fit.budget,
        discordance=fit.discordance,
        detectable=fit.budget + planning_margin(se_points, policy.alpha_fail / family, policy.power),
        method=fit.method,
        outcome=outcome,
        n_items=fit.n_items,
        certifiable=planning_margin(se_points, policy.alpha_pass, policy.power),
    )


def check_task_names(evidence: Sequence[TaskEvidence], *, with_composite: bool) -> None:
    """ValueError on no tasks, or on names that clash with each other or with the composite."""
    if not evidence:
        raise ValueError("no tasks to decide: pass at least one TaskEvidence")
    names = [e.name for e in evidence] + ([COMPOSITE] if with_composite else [])
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"task names must be unique, repeated: {', '.join(duplicates)}")


def decide(evidence: Sequence[TaskEvidence], policy: Policy = Policy()) -> Verdict:
    """Decide every task, the composite and the gate; ValueError on no tasks or duplicate task names."""
    check_task_names(evidence, with_composite=policy.composite_budget is not None)
    fits = [_fit_task(e, policy) for e in evidence]
    if policy.composite_budget is not None:
        fits.append(_fit_composite(fits, [e.weight for e in evidence], policy.composite_budget))
    p_fail = [f.p_fail for f in fits]
    adjusted = holm_adjust(p_fail)
    levels = holm_levels(p_fail, policy.alpha_fail)
    decisions = [
        _decide_one(fit, float(p), float(level), len(fits), policy)
        for fit, p, level in zip(fits, adjusted, levels, strict=True)
    ]
    tasks = tuple(decisions[: len(evidence)])
    composite = decisions[-1] if policy.composite_budget is not None else None
    if any(d.outcome is Outcome.FAIL for d in decisions):
        outcome = Outcome.FAIL
    elif all(d.outcome is Outcome.PASS for d in decisions):
        outcome = Outcome.PASS
    else:
        outcome = Outcome.WARN
    return Verdict(outcome=outcome, tasks=tasks, composite=composite, policy=policy)
