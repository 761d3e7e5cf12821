"""The decision vocabulary every stage shares: an outcome, and a task's (or the composite's) decision in points."""

from __future__ import annotations

import enum
from dataclasses import dataclass

COMPOSITE = "composite"
# Why a task (or the composite) has no numbers: the gate FAILed before it scored an item of the task.
NOT_REACHED = "not reached: the gate stopped at the first demonstrated FAIL before this task's first look"
COMPOSITE_NOT_REACHED = "not reached: the gate stopped at the first demonstrated FAIL before every task had items"


class Outcome(str, enum.Enum):
    """A task's, the composite's or the gate's decision."""

    PASS = "PASS"  # noqa: S105 (an outcome, not a password)
    FAIL = "FAIL"
    WARN = "WARN"


@dataclass(frozen=True)
class TaskDecision:
    """The decision for one task (or the composite), every score and bound in points.

    n counts units: items, or clusters when clustered (n_items always counts items). lower is the one-sided
    (1 - alpha_pass) lower bound of delta; upper the one-sided upper bound at the level Holm actually tested
    this task at, so upper < -budget exactly when the outcome is FAIL. p_fail is the raw one-sided p-value of
    H0: delta >= -budget. detectable is the true drop (positive points; delta = -detectable) that FAILs with
    probability policy.power at this n, at the Bonferroni level alpha_fail / family size (Holm's strictest
    step): budget + (z_{1-a} + z_power) * se, with se from the observed discordance (the planning
    discordance below 100 units). certifiable is the smallest budget this n PASSes with probability
    policy.power when the truth is delta = 0: (z_{1-alpha_pass} + z_power) * se.
    """

    name: str
    n: int
    base_score: float
    ckpt_score: float
    delta: float
    lower: float
    upper: float
    p_fail: float
    p_fail_adjusted: float
    budget: float
    discordance: float
    detectable: float
    method: str
    outcome: Outcome
    n_items: int
    certifiable: float
