"""Simulated outcome rates and item counts of gate's sequential verdict against known ground truth.

Every cell draws paired differences item by item, d = +1 with probability (r + delta)/2 and -1 with
probability (r - delta)/2, so E[d] = delta and P(d != 0) = r, over a pool capped at the planned units of
gate.sequential.plan (one task, composite off: the FAIL family is that task). The gate looks when the runner
does (SequentialPolicy.look_step: after 25 items, then adding an eighth of the items so far, at least 25, or a
32nd while the FAIL evidence is building), until a decision or the cap, with the policy's sequence (the design
bettor by default; --sequence normal-mixture).

The looks are replayed vectorised over replications with the package's confidence sequences (their running
p-values are monotone, so each replication stops at the first look where one crosses its level); the first
replications of every cell are replayed through gate.sequential.look itself and must agree.

"/fixed" divides the average items used by the n of the fixed-n gate meeting the plan's targets (PASS at 0 with
the policy's pass_power, 95%, FAIL at -2B with its fail_power, 97%, alpha_fail = 1%): max(Tango PASS plan, FAIL
plan), the formulas of bench/simulate_verdicts.py at these powers.
"/matched" divides by the n of the fixed-n gate with the power the sequential gate reached (its PASS rate at
0 and FAIL rate at -2B), the literal "fixed design of the same power". "Wald" is the floor no sequential test
can beat: Wald's lower bound on the average items of any test with the nominal error rates (PASS at 0: 5%
false PASS at -B, 95% power; FAIL at -2B: the task's FAIL level at -B, 97% power), normal approximation,
over the fixed n. A second table repeats the cells on a small pool, and a third searches the smallest cap
meeting the targets.
For contrast only, the table also shows the REJECTED peeking rule "FAIL when a fixed-n paired z-test,
re-run at every look, has p < alpha_fail", computed inline below: it exists nowhere in the package and must
never be shipped.

    python bench/simulate_sequential.py [--reps 4000] [--seed 7] [--no-search] [--sequence normal-mixture]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import stats

from gate.decision import Outcome
from gate.sequential import SequentialPolicy, SequentialVerdict, TaskPlan, look, plan
from gate.stats import ConfidenceSequence, required_items, tango_required_items
from gate.verdict import TaskEvidence

DISCORDANCES = (0.05, 0.1, 0.2)
BUDGETS = (3.0, 5.0)
LOOK_EVERY = 50  # the cap search's step
CHUNK = 500  # replications simulated at once: bounds the memory of the (reps, items) arrays
AGREEMENT_REPS = 20  # replications per cell replayed through gate.sequential.look
SMALL_POOL, SMALL_POOL_BUDGET = 250, 5.0  # a task too small for its plan (the normal mixture runs betting there)
PASS, FAIL, WARN = 0, 1, 2


@dataclass(frozen=True)
class CellResult:
    outcome: np.ndarray  # PASS / FAIL / WARN per replication
    items: np.ndarray  # items scored when the gate stopped
    previous: np.ndarray  # items at the look before (0 when it stopped at the first)
    peeking_fail: np.ndarray  # the rejected peeking rule FAILed at some look


def draw_differences(rng: np.random.Generator, reps: int, n: int, delta: float, r: float) -> np.ndarray:
    """(reps, n) paired differences with E[d] = delta and P(d != 0) = r."""
    u = rng.random((reps, n))
    return np.where(u < (r + delta) / 2, 1.0, np.where(u < r, -1.0, 0.0))


def look_points(policy: SequentialPolicy, cap: int) -> np.ndarray:
    """Items at each look of the runner's regular schedule (policy.look_step), up to the cap: the peeking looks."""
    points = [min(policy.look_step(0), cap)]
    while points[-1] < cap:
        points.append(min(points[-1] + policy.look_step(points[-1]), cap))
    return np.array(points)


def first_look(crossed: np.ndarray, looks: np.ndarray) -> np.ndarray:
    """Index of the first look at which a (monotone) crossing has happened; len(looks) if never."""
    at_looks = crossed[:, looks - 1]
    return np.where(at_looks.any(axis=1), at_looks.argmax(axis=1), looks.size)


def peeking_fails(d: np.ndarray, looks: np.ndarray, budget: float, alpha: float) -> np.ndarray:
    """REJECTED BASELINE: a fixed-n paired z-test of H0: delta >= -B re-run at every look. Never ship this."""
    t = looks.astype(float)
    sums = np.cumsum(d, axis=1)[:, looks - 1]
    squares = np.cumsum(d**2, axis=1)[:, looks - 1]
    means = sums / t
    sd = np.sqrt(np.maximum(squares / t - means**2, 1e-12) * t / (t - 1))
    p = stats.norm.cdf((means + budget / 100) / (sd / np.sqrt(t)))
    return np.asarray((p < alpha).any(axis=1))


def replay(d: np.ndarray, task: TaskPlan, policy: SequentialPolicy) -> CellResult:
    """Outcome and items of every replication, vectorised: the decisions look() makes at each look.

    The looks follow the runner: after policy.look_step(items), or the finer step while the task's FAIL
    evidence is building (its FAIL p-value below policy.building_level), so each replication has its own.
    """
    reps, cap, margin = d.shape[0], task.planned, task.budget / 100
    fail_cs, pass_cs = policy.task_sequences(1, task.budget, cap, min(policy.decides_from(cap), cap))
    fail_p = fail_cs.p_values(d, -margin)
    fail, building = fail_p < fail_cs.alpha, fail_p < policy.building_level(1)
    passed = pass_cs.p_values(d, -margin) < pass_cs.alpha
    # The smoke stage's catastrophic-drop check, on the first smoke_items items, as of each look.
    smoke_end = min(policy.smoke_items, cap)
    smoke_alpha = policy.smoke_alpha(1)
    smoke = (
        ConfidenceSequence("betting", "upper", smoke_alpha, policy.smoke_items).p_values(
            d[:, :smoke_end], -policy.catastrophic_drop / 100
        )
        < smoke_alpha
    )
    fail[:, :smoke_end] |= smoke
    fail[:, smoke_end:] |= smoke[:, -1:]
    rows = np.arange(reps)
    outcome, items, previous = np.full(reps, WARN), np.zeros(reps, dtype=int), np.zeros(reps, dtype=int)
    at = np.full(reps, min(policy.look_step(0), cap))
    active = np.ones(reps, dtype=bool)
    while active.any():
        index = at - 1
        failed, passing = active & fail[rows, index], active & ~fail[rows, index] & passed[rows, index]
        outcome[failed], outcome[passing] = FAIL, PASS
        stopped = failed | passing | (active & (at == cap))
        items[stopped] = at[stopped]
        active &= ~stopped
        steps = np.array([policy.look_step(int(n), bool(b)) for n, b in zip(at, building[rows, index], strict=True)])
        previous = np.where(active, at, previous)
        at = np.where(active, np.minimum(at + steps, cap), at)
    peeking = peeking_fails(d, look_points(policy, cap), task.budget, policy.alpha_fail)
    return CellResult(outcome, items, previous, peeking)


def simulate(
    rng: np.random.Generator, reps: int, delta: float, r: float, task: TaskPlan, policy: SequentialPolicy
) -> tuple[CellResult, np.ndarray]:
    """Replay `reps` replications in chunks; also return the first chunk's differences for the agreement check."""
    results, first = [], np.empty(0)
    for done in range(0, reps, CHUNK):
        d = draw_differences(rng, min(CHUNK, reps - done), task.planned, delta / 100, r)
        first = d if done == 0 else first
        results.append(replay(d, task, policy))
    merged = CellResult(*(np.concatenate([getattr(c, f) for c in results]) for f in CellResult.__dataclass_fields__))
    return merged, first


def look_at(row: np.ndarray, n: int, task: TaskPlan, policy: SequentialPolicy) -> SequentialVerdict:
    """gate.sequential.look on the first n items of one replication (0/1 scores rebuilt from d)."""
    base, ckpt = (row[:n] < 0).astype(float), (row[:n] > 0).astype(float)
    return look([TaskEvidence("t", base, ckpt, task.budget)], policy, {"t": task.planned}, {"t": n >= task.planned})


def disagreements(d: np.ndarray, result: CellResult, task: TaskPlan, policy: SequentialPolicy) -> int:
    """Replications whose replayed stop (outcome, items) differs from gate.sequential.look's."""
    names = {PASS: Outcome.PASS, FAIL: Outcome.FAIL, WARN: Outcome.WARN}
    bad = 0
    for row, outcome, items, previous in zip(
        d[:AGREEMENT_REPS], result.outcome, result.items, result.previous, strict=False
    ):
        still_pending = previous == 0 or look_at(row, int(previous), task, policy).pending
        bad += look_at(row, int(items), task, policy).outcome is not names[int(outcome)] or not still_pending
    return bad


def matched_fixed_n(task: TaskPlan, pass_rate: float, fail_rate: float, policy: SequentialPolicy, reps: int) -> int:
    """The fixed-n gate of the same power: PASS at 0 with pass_rate and FAIL at -2B with fail_rate.

    Rates are clipped to [0.5, 1 - 1/(2 reps)]: a simulated 100% only says the power is beyond what reps resolve.
    """

    def clip(rate: float) -> float:
        return min(max(rate, 0.5), 1.0 - 0.5 / reps)

    r = task.discordance
    return max(
        tango_required_items(task.budget, r, policy.alpha_pass, clip(pass_rate)),
        required_items(task.budget, r, policy.alpha_fail, clip(fail_rate)),
    )


@dataclass(frozen=True)
class CapCheck:
    cap: int
    pass_rate: float  # PASS at delta = 0
    fail_rate: float  # FAIL at delta = -2B; nan where -2B is infeasible (|-2B| > r)
    items_at_zero: float
    items_at_minus_2b: float  # nan where -2B is infeasible

    def meets(self, policy: SequentialPolicy) -> bool:
        return self.pass_rate >= policy.pass_power and not self.fail_rate < policy.fail_power


def check_cap(seed: int, reps: int, task: TaskPlan, policy: SequentialPolicy, cap: int) -> CapCheck:
    """PASS rate at 0 and FAIL rate at -2B with the pool capped at `cap` (common random numbers per seed)."""
    capped = dataclasses.replace(task, planned=cap, method=policy.method(cap))
    r = task.discordance
    at_zero = simulate(np.random.default_rng(seed), reps, 0.0, r, capped, policy)[0]
    if 2 * task.budget / 100 > r:
        fail_rate, items = math.nan, math.nan
    else:
        at_minus_2b = simulate(np.random.default_rng(seed + 1), reps, -2 * task.budget, r, capped, policy)[0]
        fail_rate, items = float(np.mean(at_minus_2b.outcome == FAIL)), float(at_minus_2b.items.mean())
    return CapCheck(cap, float(np.mean(at_zero.outcome == PASS)), fail_rate, float(at_zero.items.mean()), items)


def smallest_cap(seed: int, reps: int, task: TaskPlan, policy: SequentialPolicy) -> CapCheck:
    """The smallest cap (a multiple of LOOK_EVERY) meeting the plan's powers at 0 and at -2B, by bisection."""
    hi = check_cap(seed, reps, task, policy, LOOK_EVERY * math.ceil(task.planned / LOOK_EVERY))
    lo = 0
    while not hi.meets(policy):
        lo, hi = hi.cap, check_cap(seed, reps, task, policy, 2 * hi.cap)
    while hi.cap - lo > LOOK_EVERY:
        mid = check_cap(seed, reps, task, policy, LOOK_EVERY * ((lo + hi.cap) // (2 * LOOK_EVERY)))
        lo, hi = (lo, mid) if mid.meets(policy) else (mid.cap, hi)
    return hi


def percent(rate: float) -> str:
    """A rate as a percentage, or n/a where the cell is infeasible (nan)."""
    return "n/a" if math.isnan(rate) else f"{100 * rate:.1f}%"


def wald_floor(task: TaskPlan, delta: float, policy: SequentialPolicy) -> float:
    """Wald's lower bound on the average items of any sequential test meeting the nominal targets at delta.

    E[N] >= ((1 - b) log((1 - b) / a) + b log(b / (1 - a))) / KL, with KL = B^2 / (2 r) between the truth and
    the margin (normal approximation): a, 1 - b = 5%, pass_power for PASS at 0; the FAIL level, fail_power at -2B. nan
    elsewhere.
    """
    if delta == 0.0:
        a, b = policy.alpha_pass, 1.0 - policy.pass_power
    elif delta == -2 * task.budget:
        a, b = policy.task_fail_alpha(1), 1.0 - policy.fail_power
    else:
        return math.nan
    kl = (task.budget / 100) ** 2 / (2 * task.discordance)
    return ((1 - b) * math.log((1 - b) / a) + b * math.log(b / (1 - a))) / kl


@dataclass(frozen=True)
class Row:
    """One simulated cell, for the summary against the targets."""

    budget: float
    r: float
    delta: float
    fail: int  # replications that FAILed
    reps: int
    pass_rate: float
    fail_rate: float
    per_fixed: float
    per_matched: float


def report_group(rng: np.random.Generator, reps: int, task: TaskPlan, policy: SequentialPolicy) -> list[Row]:
    """Simulate and print the rows of one (B, r, cap): delta = 0, +1, -B, -2B where feasible."""
    budget, r = task.budget, task.discordance
    rows = {}
    for delta in (0.0, 1.0, -budget, -2 * budget):
        if abs(delta) / 100 <= r:
            result, first = simulate(rng, reps, delta, r, task, policy)
            rows[delta] = (result, AGREEMENT_REPS - disagreements(first, result, task, policy))
    fail_rate = float(np.mean(rows[-2 * budget][0].outcome == FAIL)) if -2 * budget in rows else policy.fail_power
    matched = matched_fixed_n(task, float(np.mean(rows[0.0][0].outcome == PASS)), fail_rate, policy, reps)
    print(
        f"B = {budget:g}, r = {r:g}: {task.method}, cap {task.planned}, fixed n {task.fixed_n}, "
        f"same-power fixed n {matched}"
    )
    out = []
    for delta in (0.0, 1.0, -budget, -2 * budget):
        label = f"{budget:3g} {r:5.2f} {delta:+6.1f} {task.planned:5d} | "
        if delta not in rows:
            print(label + "infeasible: |delta| > r")
            continue
        result, agree = rows[delta]
        rates = [100 * np.mean(result.outcome == o) for o in (FAIL, PASS, WARN)]
        avg = float(result.items.mean())
        wald = wald_floor(task, delta, policy) / task.fixed_n
        print(
            f"{label}{rates[0]:5.2f}% {rates[1]:5.1f}% {rates[2]:5.1f}% | {avg:9.0f} {avg / task.fixed_n:6.2f} "
            f"{avg / matched:8.2f} {'' if math.isnan(wald) else f'{wald:.2f}':>5} | "
            f"{100 * result.peeking_fail.mean():11.2f}% | {agree:2d}/{AGREEMENT_REPS}"
        )
        fails = int(np.sum(result.outcome == FAIL))
        out.append(Row(budget, r, delta, fails, reps, rates[1] / 100, fails / reps, avg / task.fixed_n, avg / matched))
    return out


def summarise(rows: list[Row]) -> None:
    """Each target with the worst cell of the main table (Clopper-Pearson 95% upper bound on false FAIL)."""
    at = {
        label: [row for row in rows if row.delta == value(row)]
        for label, value in (
            ("-B", lambda row: -row.budget),
            ("-2B", lambda row: -2 * row.budget),
            ("0", lambda row: 0.0),
            ("+1", lambda row: 1.0),
        )
    }
    worst_false = max(at["-B"], key=lambda row: row.fail)
    upper = stats.beta.ppf(0.95, worst_false.fail + 1, worst_false.reps - worst_false.fail)
    print("\ntargets, worst cell of the main table:")
    print(
        f"  false FAIL at -B <= 1%: {100 * worst_false.fail_rate:.2f}% (B {worst_false.budget:g}, r "
        f"{worst_false.r:g}; 95% upper bound {100 * upper:.2f}%)"
    )
    print(f"  FAIL at -2B >= 90%: {100 * min(row.fail_rate for row in at['-2B']):.1f}%")
    print(f"  PASS at 0 >= 95%: {100 * min(row.pass_rate for row in at['0']):.1f}%")
    for label in ("0", "+1", "-2B"):
        print(
            f"  average items at {label:>3} <= 0.60 of the fixed design: at most "
            f"{max(row.per_matched for row in at[label]):.2f} of the same-power fixed n, "
            f"{max(row.per_fixed for row in at[label]):.2f} of the nominal one"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=4000, help="replications per cell (default 4000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the random generator (default 7)")
    parser.add_argument("--no-search", action="store_true", help="skip the search for the smallest sufficient cap")
    parser.add_argument(
        "--sequence",
        choices=("design-betting", "normal-mixture"),
        default="design-betting",
        help="the tasks' confidence sequence (default design-betting, the gate's default)",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.monotonic()
    print(
        f"gate sequential verdict ({args.sequence}), one task, composite off, looks as the runner's, "
        f"{args.reps} reps per cell, seed {args.seed}"
    )
    print("targets: false FAIL <= 1% at delta = -B (far less at 0), FAIL >= 90% at -2B, PASS >= 95% at 0,")
    print("         average items <= 60% of the fixed design in the clear cases (0, +1, -2B)\n")
    header = (
        f"{'B':>3} {'r':>5} {'delta':>6} {'cap':>5} | {'FAIL':>6} {'PASS':>6} {'WARN':>6} | {'avg items':>9} "
        f"{'/fixed':>6} {'/matched':>8} {'Wald':>5} | {'peeking FAIL':>12} | {'agree':>5}"
    )
    searched, rows = [], []
    print("pools capped at plan()'s planned units")
    print(header + "\n" + "-" * len(header))
    for budget in BUDGETS:
        for r in DISCORDANCES:
            policy = SequentialPolicy(composite_budget=None, planning_discordance=r, sequence=args.sequence)
            task = plan({"t": budget}, {"t": 100_000}, policy)[0]
            rows += report_group(rng, args.reps, task, policy)
            if not args.no_search:
                searched.append((task, smallest_cap(args.seed, args.reps, task, policy)))
        print()
    print(f"small pools of {SMALL_POOL} items (the normal mixture runs the betting sequence there)")
    print(header + "\n" + "-" * len(header))
    for r in DISCORDANCES:
        policy = SequentialPolicy(composite_budget=None, planning_discordance=r, sequence=args.sequence)
        report_group(rng, args.reps, plan({"t": SMALL_POOL_BUDGET}, {"t": SMALL_POOL}, policy)[0], policy)
    print(
        f"\nMonte-Carlo standard error: at most {100 * math.sqrt(0.25 / args.reps):.1f} points, "
        f"{100 * math.sqrt(0.01 * 0.99 / args.reps):.2f} at 1%."
    )
    print("fixed: the fixed-n gate with the plan's powers; matched: the fixed-n gate with the simulated power.")
    print("Wald: the floor for any sequential test with the plan's error rates and powers, over the fixed n.")
    print("peeking = the REJECTED rule: a fixed-n z-test re-checked at every look, for contrast only.")
    summarise(rows)
    if searched:
        policy = SequentialPolicy()
        print(
            f"\nplanned n: the smallest cap (a multiple of 50) simulated to PASS >= {policy.pass_power:.0%} at 0 and "
            f"FAIL >= {policy.fail_power:.0%} at -2B"
        )
        print(
            f"{'B':>3} {'r':>5} | {'fixed n':>7} {'plan()':>7} {'smallest':>8} {'/fixed':>6} | {'PASS@0':>6} "
            f"{'FAIL@-2B':>8} | {'items@0/fixed':>13} {'items@-2B/fixed':>15}"
        )
        for task, found in searched:
            print(
                f"{task.budget:3g} {task.discordance:5.2f} | {task.fixed_n:7d} {task.planned:7d} {found.cap:8d} "
                f"{found.cap / task.fixed_n:6.2f} | {100 * found.pass_rate:5.1f}% {percent(found.fail_rate):>8} | "
                f"{found.items_at_zero / task.fixed_n:13.2f} {found.items_at_minus_2b / task.fixed_n:15.2f}"
            )
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
