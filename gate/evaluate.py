"""Which items get scored, and when the gate stops: the fixed-n design or the sequential, anytime-valid one."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from gate.decision import NOT_REACHED, Outcome, TaskDecision
from gate.diagnosis import MatchedItems, demonstrated_drop
from gate.items import ItemOutput, ItemScorer, ModelScores, PairedTask, ProgressHook, pair_scores
from gate.sequential import (
    Answers,
    FailOutlook,
    SequentialPolicy,
    SequentialVerdict,
    StopReason,
    fail_outlook,
    look,
    plan,
)
from gate.suites import PreparedTask
from gate.verdict import Policy, TaskEvidence, decide

STOPPED_BY_GATE = "not decided: the gate stopped at the first demonstrated FAIL"


@dataclass(frozen=True)
class Evaluation:
    """The scored pairs, each reached task's decision, why every task stopped, and the overall outcome."""

    outcome: Outcome
    paired: tuple[PairedTask, ...]
    decisions: dict[str, TaskDecision]
    composite: TaskDecision | None
    reasons: dict[str, str]
    planned: dict[str, int]
    policy: dict[str, Any]
    looks: int
    matched: dict[str, MatchedItems] = field(default_factory=dict)  # by generation task, for its diagnosis
    # Tasks the gate stopped before scoring an item of them (at a first FAIL): no pair, no decision.
    not_reached: frozenset[str] = frozenset()


def evidence_of(paired: Sequence[PairedTask], budgets: Mapping[str, float]) -> list[TaskEvidence]:
    """The statistics' view of paired items: score arrays, the budget, and cluster labels where a task has them."""
    evidence = []
    for task in paired:
        clusters = None
        if task.task.spec.cluster_field:
            clusters = np.array([item.cluster or str(item.doc_id) for item in task.items])
        evidence.append(
            TaskEvidence(
                name=task.task.spec.id,
                base=np.array([item.base_score for item in task.items], dtype=float),
                ckpt=np.array([item.ckpt_score for item in task.items], dtype=float),
                budget=budgets[task.task.spec.id],
                clusters=clusters,
            )
        )
    return evidence


def evaluate_fixed(
    models: ItemScorer,
    tasks: Sequence[PreparedTask],
    budgets: Mapping[str, float],
    policy: Policy,
    progress: ProgressHook | None = None,
) -> Evaluation:
    """Score every sampled item of every task on both models, then decide once (Tango or Wald, Holm)."""
    paired = score_pairs(models, tasks, {task.spec.id: task.doc_ids for task in tasks}, progress)
    return decide_fixed(paired, budgets, policy)


def score_pairs(
    models: ItemScorer,
    tasks: Sequence[PreparedTask],
    doc_ids: Mapping[str, Sequence[int]],
    progress: ProgressHook | None = None,
) -> list[PairedTask]:
    """Both models' outputs on the given items of each task, paired item by item."""
    return pair_scores(
        tasks, models.score("base", tasks, doc_ids, progress), models.score("checkpoint", tasks, doc_ids, progress)
    )


def decide_fixed(paired: Sequence[PairedTask], budgets: Mapping[str, float], policy: Policy) -> Evaluation:
    """The fixed-n decision on every sampled item of every task: one look (Tango or Wald, Holm)."""
    verdict = decide(evidence_of(paired, budgets), policy)
    return Evaluation(
        outcome=verdict.outcome,
        paired=tuple(paired),
        decisions={d.name: d for d in verdict.tasks},
        composite=verdict.composite,
        reasons={task.task.spec.id: f"fixed-n: all {len(task.items)} sampled items" for task in paired},
        planned={task.task.spec.id: len(task.items) for task in paired},
        policy={"mode": "fixed", **asdict(policy), "correction": "Holm"},
        looks=1,
        matched=twin_matches(paired, {d.name: d for d in verdict.tasks}),
    )


def twin_matches(
    paired: Sequence[PairedTask],
    decisions: Mapping[str, TaskDecision],
    models: ItemScorer | None = None,
    progress: ProgressHook | None = None,
) -> dict[str, MatchedItems]:
    """For each generation task with a demonstrated drop and a twin sharing its match_field, its lost items read
    on the twin's sampled items about the same facts (see MatchedItems).

    With `models`, the twin's matching items not scored yet (a sequential run stops early) are scored now, for
    the diagnosis only: they never enter the twin's own evidence. Without, only the scored ones are read.
    """
    by_id = {task.task.spec.id: task for task in paired}
    matches = {}
    for generation in paired:
        spec = generation.task.spec
        twin = by_id.get(spec.loglik_twin or "")
        if twin is None or not generation.task.match_keys or not demonstrated_drop(decisions[spec.id]):
            continue
        fact_of = dict(zip(generation.task.doc_ids, generation.task.match_keys, strict=True))
        lost = {fact_of[item.doc_id] for item in generation.items if item.base_score == 1.0 and item.ckpt_score == 0.0}
        wanted = [doc for doc, fact in zip(twin.task.doc_ids, twin.task.match_keys, strict=True) if fact in lost]
        scored = {item.doc_id: item for item in twin.items}
        missing = [doc for doc in wanted if doc not in scored]
        if missing and models is not None:
            extra = score_pairs(models, [twin.task], {twin.task.spec.id: missing}, progress)[0]
            scored.update({item.doc_id: item for item in extra.items})
        base_right = [scored[doc] for doc in wanted if doc in scored and scored[doc].base_score == 1.0]
        held = sum(item.ckpt_score == 1.0 for item in base_right)
        matches[spec.id] = MatchedItems(lost=len(lost), matched=len(base_right), held=held)
    return matches


def _generates(task: PreparedTask) -> bool:
    """Whether the task is scored on generated text (lm-eval's generate_until)."""
    return task.lm_eval_config.get("output_type") == "generate_until"


def _units(task: PreparedTask) -> list[int]:
    """Item counts at which a whole unit (an item, or a cluster of items) ends."""
    if task.clusters is None:
        return list(range(1, len(task.doc_ids) + 1))
    ends = [i for i in range(1, len(task.clusters)) if task.clusters[i] != task.clusters[i - 1]]
    return [*ends, len(task.clusters)]


def _next_stop(unit_ends: Sequence[int], scored: int, want: int, limit: int) -> int:
    """The first unit boundary at or after scored + want, capped at the task's item limit."""
    target = min(scored + want, limit)
    return next(end for end in unit_ends if end >= target)


class _Stream:
    """Both models' outputs so far, per task, in the seeded order."""

    def __init__(self, tasks: Sequence[PreparedTask]) -> None:
        self.tasks = {task.spec.id: task for task in tasks}
        self.base: dict[str, list[ItemOutput]] = {task_id: [] for task_id in self.tasks}
        self.ckpt: dict[str, list[ItemOutput]] = {task_id: [] for task_id in self.tasks}
        self.templates: dict[str, bool] = {}

    def scored(self, task_id: str) -> int:
        return len(self.base[task_id])

    def unscored(self) -> list[str]:
        """The tasks without items yet (after a first FAIL: those it stopped the gate before)."""
        return [task_id for task_id in self.tasks if not self.base[task_id]]

    def extend(self, role_scores: ModelScores, into: dict[str, list[ItemOutput]]) -> None:
        for task_id, outputs in role_scores.outputs.items():
            into[task_id].extend(outputs)
        self.templates.update(role_scores.chat_template)

    def score(self, models: ItemScorer, task_id: str, doc_ids: Sequence[int], progress: ProgressHook | None) -> None:
        """Score both models on more items of one task, in the seeded order."""
        task, batch = [self.tasks[task_id]], {task_id: doc_ids}
        self.extend(models.score("base", task, batch, progress), self.base)
        self.extend(models.score("checkpoint", task, batch, progress), self.ckpt)

    def paired(self, task_ids: Sequence[str] | None = None) -> list[PairedTask]:
        """The paired items so far of the given tasks (default: every task with items)."""
        ids = [task_id for task_id in self.tasks if self.base[task_id]] if task_ids is None else task_ids
        tasks = [self.tasks[task_id] for task_id in ids]
        return pair_scores(tasks, ModelScores(self.base, self.templates), ModelScores(self.ckpt, self.templates))

    def task_answers(self, task_id: str) -> Answers | None:
        """A generation task's answers for the smoke stage's format-collapse check; None for other tasks."""
        if not (_generates(self.tasks[task_id]) and self.base[task_id]):
            return None
        return Answers(
            base=tuple(o.answer for o in self.base[task_id]), ckpt=tuple(o.answer for o in self.ckpt[task_id])
        )

    def answers(self) -> dict[str, Answers]:
        """Every generation task's answers (see task_answers)."""
        return {task_id: answers for task_id in self.tasks if (answers := self.task_answers(task_id)) is not None}


def _fail_outlook(
    stream: _Stream,
    task_id: str,
    budgets: Mapping[str, float],
    policy: SequentialPolicy,
    planned: Mapping[str, int],
    limit: Mapping[str, int],
) -> FailOutlook:
    """One task's FAIL side on the items scored so far (see gate.sequential.fail_outlook)."""
    return fail_outlook(
        evidence_of(stream.paired([task_id]), budgets)[0],
        policy,
        len(stream.tasks),
        planned[task_id],
        stream.scored(task_id) >= limit[task_id],
        stream.task_answers(task_id),
    )


def _extend_limits(
    stream: _Stream,
    verdict: SequentialVerdict,
    limit: dict[str, int],
    units: Mapping[str, Sequence[int]],
    budgets: Mapping[str, float],
    policy: SequentialPolicy,
    time_left: bool,
) -> dict[str, StopReason]:
    """Move the item limit of each task undecided at it towards its pool, as far as the discordance observed so far
    says its decision needs (the plan re-run on the items scored as a pilot), while `time_left`.

    When the re-run plan's count is met already (the truth lies near the budget's edge, where the plan's power at
    Delta = 0 falls short), the limit grows by half again: the time budget, not the cap, bounds what an undecided
    task costs. Returns, for every task still at its limit, why it stops there: time budget reached, pool
    exhausted, or cap reached (a cap set in gate.yaml, which is hard). The sequences' tuning (`planned`) is left
    alone: anytime-valid tests stay valid whenever they stop, however that is chosen from the data.
    """
    paired = stream.paired()
    replanned = {
        row.name: row.needed
        for row in plan(budgets, {name: len(units[name]) for name in budgets}, policy, evidence_of(paired, budgets))
    }
    stops: dict[str, StopReason] = {}
    for task_look in verdict.tasks:
        task_id = task_look.decision.name
        if task_look.reason is not StopReason.EXHAUSTED:
            continue
        scored_units = units[task_id].index(limit[task_id]) + 1
        task = stream.tasks[task_id]
        if scored_units >= len(units[task_id]):
            whole_pool = len(task.doc_ids) >= task.pool_size
            stops[task_id] = StopReason.EXHAUSTED if whole_pool else StopReason.CAP
        elif not time_left:
            stops[task_id] = StopReason.TIME
        else:
            target = replanned[task_id] if replanned[task_id] > scored_units else scored_units + scored_units // 2 + 1
            limit[task_id] = units[task_id][min(target, len(units[task_id])) - 1]
    return stops


def evaluate_sequential(
    models: ItemScorer,
    tasks: Sequence[PreparedTask],
    budgets: Mapping[str, float],
    policy: SequentialPolicy,
    progress: ProgressHook | None = None,
    time_budget: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
) -> Evaluation:
    """Stream items in the seeded order, look after every batch, stop each task once decided.

    A round scores a batch of every undecided task, one task at a time, generation tasks first; a task whose
    FAIL evidence is building is scored again at once. The gate stops at the first demonstrated FAIL, even
    within a round (a task not reached by then is reported as not reached, without items). A task undecided at its
    cap goes on into the rest of its pool (tasks prepared with extend=True) as far as the discordance it shows calls
    for (half again as far when that is met), while the scoring has taken less than `time_budget` seconds (by `clock`;
    once it has, a task past its cap stops at its next look); where it stops undecided it ends WARN, with the
    reason: time budget reached, pool exhausted, or cap reached (a hard cap from gate.yaml).
    """
    started = clock()
    units = {task.spec.id: _units(task) for task in tasks}
    caps = {task.spec.id: task.cap_units for task in tasks}
    continuous = [task.spec.id for task in tasks if task.spec.scores == "continuous"]
    plans = {p.name: p for p in plan(budgets, caps, policy, continuous=continuous)}
    planned = {task_id: p.planned for task_id, p in plans.items()}
    cap_limit = {task_id: units[task_id][planned[task_id] - 1] for task_id in units}
    limit = dict(cap_limit)
    stream = _Stream(tasks)
    keep = [task.spec.id for task in tasks]
    looks = 0
    stops: dict[str, StopReason] = {}
    while True:
        batch: dict[str, tuple[int, ...]] = {}
        for task_id in keep:
            scored = stream.scored(task_id)
            stop = _next_stop(units[task_id], scored, policy.look_step(scored), limit[task_id])
            if stop > scored:
                batch[task_id] = stream.tasks[task_id].doc_ids[scored:stop]
        # Task by task, generation first (where forgetting shows first): a FAIL stops the round at once.
        order = sorted(batch, key=lambda task_id: not _generates(stream.tasks[task_id]))
        for position, task_id in enumerate(order):
            stream.score(models, task_id, batch[task_id], progress)
            # A task whose FAIL evidence is building gets its next batch at once: a regressed checkpoint stops
            # within its first task instead of after a round of every task.
            while (outlook := _fail_outlook(stream, task_id, budgets, policy, planned, limit)) == "building":
                scored = stream.scored(task_id)
                stop = _next_stop(units[task_id], scored, policy.look_step(scored, building=True), limit[task_id])
                if stop == scored:
                    break
                stream.score(models, task_id, stream.tasks[task_id].doc_ids[scored:stop], progress)
            if outlook == "failed":
                twin = stream.tasks[task_id].spec.loglik_twin
                if twin in order[position + 1 :]:  # its diagnosis (format/alignment or knowledge) reads the twin
                    stream.score(models, twin, batch[twin], progress)
                break
        looks += 1
        paired_tasks = stream.paired()
        if clock() - started >= time_budget:  # out of time: a task past its cap stops where it is
            for task_id, cap_end in cap_limit.items():
                if stream.scored(task_id) > cap_end:
                    limit[task_id] = stream.scored(task_id)
        while True:
            exhausted = {t.task.spec.id: stream.scored(t.task.spec.id) >= limit[t.task.spec.id] for t in paired_tasks}
            evidence = evidence_of(paired_tasks, budgets)
            verdict = look(evidence, policy, planned, exhausted, stream.answers(), tasks=len(stream.tasks))
            if verdict.outcome is Outcome.FAIL:
                break
            before = dict(limit)
            stops = _extend_limits(stream, verdict, limit, units, budgets, policy, clock() - started < time_budget)
            if limit == before:
                break
        if progress:
            decided = sum(not t.pending for t in verdict.tasks)
            progress(f"look {looks}: {decided}/{len(stream.tasks)} tasks decided")
        if not verdict.pending:
            break
        # A task without items is scored next whatever the look says (look leaves it to the runner).
        keep = [*verdict.keep_scoring, *stream.unscored()]
    assert verdict.outcome is not None  # not pending
    not_reached = frozenset(stream.unscored())
    reasons = dict.fromkeys(not_reached, NOT_REACHED) | {
        t.decision.name: (
            f"{stops.get(t.decision.name, t.reason).value}{': ' + t.detail if t.detail else ''}"
            if t.reason
            else STOPPED_BY_GATE
        )
        for t in verdict.tasks
    }
    decisions = {t.decision.name: t.decision for t in verdict.tasks}
    return Evaluation(
        outcome=verdict.outcome,
        paired=tuple(paired_tasks),
        decisions=decisions,
        composite=verdict.composite.decision if verdict.composite else None,
        reasons=reasons,
        planned=cap_limit,
        policy={
            "mode": "sequential",
            **asdict(policy),
            "power": policy.fail_power,
            "method": (
                "anytime-valid tests betting on the design alternatives (PASS at 0, FAIL at -2B)"
                if policy.sequence == "design-betting"
                else "anytime-valid confidence sequences (normal mixture; betting below "
                f"{policy.small_task_items} items)"
            ),
            "correction": "Bonferroni",
            "time_budget": time_budget,
            "extended": {
                task_id: stream.scored(task_id) - cap_end
                for task_id, cap_end in cap_limit.items()
                if stream.scored(task_id) > cap_end
            },
        },
        looks=looks,
        matched=twin_matches(paired_tasks, decisions, models, progress),
        not_reached=not_reached,
    )
