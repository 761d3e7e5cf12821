"""How far the sequential runner scores a task. A task undecided at its item cap goes on into its pool, as far as
the discordance it observes calls for (half again as far when that is met), within the run's time budget; its stop
reason tells a cap, a time budget and a pool apart. A first FAIL stops the gate before the tasks it has not reached.
A statistically designed simulation: paired 0/1 scores drawn with a known true delta and discordance, streamed
through the real evaluate_sequential."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from gate.decision import NOT_REACHED, Outcome
from gate.evaluate import evaluate_sequential
from gate.items import ItemOutput, ModelScores
from gate.sequential import SequentialPolicy, StopReason
from gate.stats import sequence_required_units
from gate.suites import PreparedTask, TaskSpec

BUDGET = 8.0
POLICY = SequentialPolicy(composite_budget=None)


def simulated_task(name: str, cap: int, pool: int, *, hard: bool = False) -> PreparedTask:
    """A task of `pool` items capped at `cap`: with a reserve beyond the cap, or none when the cap is `hard`."""
    spec = TaskSpec(id=name, capability="knowledge", metric="acc", items=cap, pool=pool, budget=BUDGET)
    config = {"output_type": "multiple_choice"}
    if hard:
        return PreparedTask(spec, config, tuple(range(cap)), pool, "sha256:sim")
    return PreparedTask(spec, config, tuple(range(pool)), pool, "sha256:sim", cap=cap if cap < pool else None)


class SimulatedPair:
    """Scores drawn once per item: the base right with probability 0.6; the pair discordant with probability r,
    the checkpoint then losing (base right) or gaining so that the true delta is `delta` (a proportion)."""

    def __init__(self, pool: int, delta: float, r: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        d = rng.choice([1.0, 0.0, -1.0], size=pool, p=[(r + delta) / 2, 1.0 - r, (r - delta) / 2])
        base = np.where(d == 0.0, (rng.random(pool) < 0.6).astype(float), (d < 0).astype(float))
        self.scores = {"base": base, "checkpoint": base + d}
        self.items = 0
        self.tasks: set[str] = set()

    def score(
        self, role: str, tasks: Sequence[PreparedTask], doc_ids: Mapping[str, Sequence[int]], progress: object = None
    ) -> ModelScores:
        outputs = {
            t.spec.id: [ItemOutput(i, float(self.scores[role][i]), "", "", "", None) for i in doc_ids[t.spec.id]]
            for t in tasks
        }
        self.items += sum(len(o) for o in outputs.values()) if role == "base" else 0
        self.tasks.update(t.spec.id for t in tasks)
        return ModelScores(outputs, {t.spec.id: False for t in tasks})


def gate_once(
    delta: float, r: float, seed: int, *, cap: int, pool: int, time_budget: float, hard: bool = False
) -> tuple[str, str, int]:
    """Outcome, stop reason and items scored of one simulated single-task gate."""
    task = simulated_task("sim", cap, pool, hard=hard)
    models = SimulatedPair(pool, delta, r, seed)
    evaluation = evaluate_sequential(models, [task], {"sim": BUDGET}, POLICY, time_budget=time_budget)
    return evaluation.outcome.value, evaluation.reasons["sim"], models.items


def test_a_high_discordance_regression_fails_once_the_task_may_go_past_its_cap() -> None:
    """Delta = -2B at r = 0.35: the cap planned for r = 0.10 gives the design FAIL under half the time (planned
    units for 50% power exceed the cap); going on into a pool of 2000 FAILs it with the planned 97%. 16 seeds: if
    extension did nothing, 14+ FAILs would have probability < 0.01 (binomial at p = 0.5)."""
    cap = 400
    assert sequence_required_units(BUDGET, 0.35, POLICY.task_fail_alpha(1), 0.5, "design-betting") > cap
    extended = [gate_once(-0.16, 0.35, seed, cap=cap, pool=2000, time_budget=1e9) for seed in range(16)]
    held = [gate_once(-0.16, 0.35, seed, cap=cap, pool=2000, time_budget=0.0) for seed in range(16)]
    assert sum(outcome == "FAIL" for outcome, _, _ in extended) >= 14
    assert sum(outcome == "FAIL" for outcome, _, _ in held) <= 10
    assert max(items for _, _, items in held) <= cap < max(items for _, _, items in extended)
    # Held at the cap, the undecided ones say it was the time budget that stopped them, not the pool.
    assert {reason for outcome, reason, _ in held if outcome == "WARN"} == {StopReason.TIME.value}


def test_a_benign_checkpoint_near_half_its_budget_passes_once_the_task_may_go_past_its_cap() -> None:
    """Delta = -B/2.5 at r = 0.15: the cap (planned for Delta = 0 at r = 0.10) PASSes it about half the time; going
    on into the pool, also where the re-run plan's count is met, PASSes most. 16 seeds: if extension did nothing,
    12+ PASSes would have probability < 0.01 (binomial at the held design's rate, about 0.4)."""
    extended = [gate_once(-0.032, 0.15, seed, cap=400, pool=2000, time_budget=1e9)[0] for seed in range(16)]
    held = [gate_once(-0.032, 0.15, seed, cap=400, pool=2000, time_budget=0.0)[0] for seed in range(16)]
    assert extended.count("PASS") >= 12 and extended.count("PASS") > held.count("PASS")
    assert "FAIL" not in extended + held


def test_stop_reasons_tell_cap_time_budget_and_pool_apart() -> None:
    # Delta = -B at the planned discordance, free to go on: undecided until its pool runs out.
    reasons = {gate_once(-0.08, 0.1, seed, cap=400, pool=2000, time_budget=1e9)[1] for seed in range(3)}
    assert reasons == {StopReason.EXHAUSTED.value}
    # The same with a hard cap (gate.yaml's items:, no reserve beyond it): the cap ran out, not the pool.
    outcome, reason, items = gate_once(-0.08, 0.1, 0, cap=400, pool=2000, time_budget=1e9, hard=True)
    assert (outcome, reason, items) == (Outcome.WARN.value, StopReason.CAP.value, 400)
    # The same high-discordance edge case with no reserve beyond the cap: the pool itself ran out.
    outcome, reason, items = gate_once(-0.08, 0.35, 0, cap=400, pool=400, time_budget=1e9)
    assert (outcome, reason, items) == (Outcome.WARN.value, StopReason.EXHAUSTED.value, 400)


@pytest.mark.parametrize("delta", [0.0, -0.16])
def test_a_clear_case_never_goes_past_its_cap(delta: float) -> None:
    """At the planned discordance (for -2B every discordant pair is a loss) the design cases decide within the cap:
    the reserve is not touched."""
    for seed in range(4):
        outcome, _, items = gate_once(delta, max(0.1, -delta), seed, cap=400, pool=2000, time_budget=1e9)
        assert outcome == ("PASS" if delta == 0.0 else "FAIL") and items <= 400


def test_a_task_past_its_cap_stops_at_its_next_look_once_the_time_is_spent() -> None:
    """The clock here counts items scored, so the budget of 600 is spent once 600 items are in: an edge case at high
    discordance (it would go on towards 2000) stops at the look after that, with the time budget as its reason."""
    task = simulated_task("sim", 400, 2000)
    models = SimulatedPair(2000, -0.08, 0.35, 0)
    evaluation = evaluate_sequential(
        models, [task], {"sim": BUDGET}, POLICY, time_budget=600, clock=lambda: float(models.items)
    )
    assert evaluation.outcome is Outcome.WARN and evaluation.reasons["sim"] == StopReason.TIME.value
    assert 600 <= models.items <= 600 + 600 // 8 + 1
    assert evaluation.policy["extended"] == {"sim": models.items - 400} and evaluation.planned == {"sim": 400}


def test_a_first_fail_leaves_the_tasks_not_reached_unscored_at_the_whole_gates_level() -> None:
    """A forgetful-sized drop (-60 points) on the first of three tasks FAILs it within the first round: the other
    two are never scored, have no decision, and are reported as not reached. Its FAIL level stays the three-task
    gate's: the p-value adjusted for three tasks and the composite, not for the one task scored."""
    policy = SequentialPolicy()  # with the composite: a family of 4
    tasks = [simulated_task(name, 400, 400) for name in ("a", "b", "c")]
    models = SimulatedPair(400, -0.6, 0.62, 0)
    evaluation = evaluate_sequential(models, tasks, dict.fromkeys("abc", BUDGET), policy)
    assert evaluation.outcome is Outcome.FAIL and models.tasks == {"a"}
    assert evaluation.not_reached == {"b", "c"} and set(evaluation.decisions) == {"a"}
    assert [t.task.spec.id for t in evaluation.paired] == ["a"] and evaluation.composite is None
    assert evaluation.reasons["b"] == evaluation.reasons["c"] == NOT_REACHED
    failed, level = evaluation.decisions["a"], policy.task_fail_alpha(3)
    assert failed.outcome is Outcome.FAIL
    assert failed.p_fail_adjusted == pytest.approx(min(1.0, failed.p_fail * policy.alpha_fail / level))
    assert policy.task_fail_alpha(3) < policy.task_fail_alpha(1)
