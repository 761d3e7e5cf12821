"""Why a generation task dropped: format/alignment or knowledge, read on its multiple-choice twin. Never the verdict."""

from __future__ import annotations

from dataclasses import dataclass

from scipy import stats

from gate.decision import Outcome, TaskDecision
from gate.result import Diagnosis

FORMAT_ALIGNMENT = "format/alignment"
KNOWLEDGE = "knowledge"
UNDETERMINED = "undetermined"  # a drop is demonstrated, but neither the matched items nor the twin decide which


@dataclass(frozen=True)
class MatchedItems:
    """A generation task's lost items (base right, checkpoint wrong) read on its twin's items about the same facts.

    lost counts the generation items lost; matched, those whose fact the twin's scored items ask and the base
    answers right there; held, those of the matched the checkpoint still answers right as multiple choice.
    """

    lost: int
    matched: int
    held: int

    def __post_init__(self) -> None:
        if not 0 <= self.held <= self.matched <= self.lost:
            raise ValueError(f"need 0 <= held <= matched <= lost, got {self.held}, {self.matched}, {self.lost}")


# Item by item, a label needs this many matched lost items and a one-sided binomial test at this level on
# whether most of them hold (format/alignment) or most do not (knowledge); otherwise the task-level reading.
MIN_MATCHED_ITEMS = 10
MATCHED_ALPHA = 0.05


def _matched_label(matched: MatchedItems | None) -> str | None:
    """The item-by-item label, when the matched lost items show one clearly; else None."""
    if matched is None or matched.matched < MIN_MATCHED_ITEMS:
        return None
    if stats.binomtest(matched.held, matched.matched, 0.5, alternative="greater").pvalue < MATCHED_ALPHA:
        return FORMAT_ALIGNMENT
    if stats.binomtest(matched.held, matched.matched, 0.5, alternative="less").pvalue < MATCHED_ALPHA:
        return KNOWLEDGE
    return None


def demonstrated_drop(decision: TaskDecision) -> bool:
    """Whether a task's drop is demonstrated: it FAILs, or its upper bound lies below 0."""
    return decision.outcome is Outcome.FAIL or decision.upper < 0.0


def diagnose(
    generation: TaskDecision, twin: TaskDecision, twin_budget: float, matched: MatchedItems | None = None
) -> Diagnosis | None:
    """Label a generation task's drop by its log-likelihood twin (multiple choice on the same facts).

    Only a demonstrated drop is labelled: the generation task FAILs or its upper bound is below 0. Item by item
    first, when `matched` gives the lost items read on the twin's items about the same facts: "format/alignment"
    when most of them are still answered right as multiple choice (binomial test against a half, level
    MATCHED_ALPHA, at least MIN_MATCHED_ITEMS), "knowledge" when most are not. Otherwise task by task:
    "format/alignment" when the twin's accuracy holds (it PASSes, or its lower bound is above -twin_budget, the
    twin's budget before any waiver), since the model still ranks the right answers first but no longer says them;
    "knowledge" when the twin drops too (FAILs, or its upper bound is below 0); "undetermined" when neither
    reading decides (the detail says how many matched items there were and how many are needed). None when no
    drop is demonstrated. A twin drop demonstrated but within its budget still counts as holding. Never the verdict.
    """
    if not demonstrated_drop(generation):
        return None
    holds = twin.lower > -twin_budget or (twin.outcome is Outcome.PASS and twin.budget <= twin_budget)
    drops = twin.outcome is Outcome.FAIL or twin.upper < 0.0
    by_item = _matched_label(matched)
    label = by_item or (FORMAT_ALIGNMENT if holds else KNOWLEDGE if drops else UNDETERMINED)

    def evidence(d: TaskDecision) -> str:
        return f"Δ {d.delta:+.1f} pts, interval [{d.lower:+.1f}, {d.upper:+.1f}]"

    dropped = f"{generation.name} dropped ({evidence(generation)})"
    state = f"held within {twin_budget:g} pts" if holds else "dropped too" if drops else "was not decided"
    tasks = f"its log-likelihood twin {twin.name} {state} ({evidence(twin)})"
    if by_item is not None:
        assert matched is not None  # by_item needs it
        scope = (
            f"item by item: of the {matched.lost} answers lost, {matched.matched} ask a fact that {twin.name} scored "
            f"and the base answers right there; the checkpoint still answers {matched.held} of those right as "
            f"multiple choice; task by task, {tasks}"
        )
    else:
        reading = "too few" if matched is not None and matched.matched < MIN_MATCHED_ITEMS else "no clear majority"
        items = "" if matched is None else f" ({matched.matched} lost answers matched on the same facts: {reading})"
        scope = f"task by task{items}: {tasks}"
    if label == UNDETERMINED:
        count = 0 if matched is None else matched.matched
        needed = (f"{MIN_MATCHED_ITEMS} needed" if count < MIN_MATCHED_ITEMS
                  else f"no clear majority at {MIN_MATCHED_ITEMS} or more")
        return Diagnosis(label, f"{count} matched items, {needed}; {dropped}, and {tasks}")
    meaning = (
        "the right answers are still ranked first but no longer produced"
        if label == FORMAT_ALIGNMENT
        else "the knowledge itself is lost"
    )
    return Diagnosis(label, f"{dropped}; {meaning}. Compared {scope}")
