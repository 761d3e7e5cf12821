"""Simulated outcome rates of gate's fixed-n verdict against known ground truth.

Every cell draws paired 0/1 scores item by item, with P(base, ckpt = 1, 0) = (r - delta)/2 and
P(0, 1) = (r + delta)/2, so E[ckpt - base] = delta and P(ckpt != base) = r, and runs gate.verdict.decide on
one task (composite off: the FAIL family is that task). n is planned per r: the larger of the n that PASSes
a benign checkpoint 95% of the time and the n that FAILs a 2B regression 90% of the time at alpha_fail.

For contrast only, the table also shows the REJECTED naive rule "FAIL when the score dropped by more than B",
computed inline below: it exists nowhere in the package and must never be shipped.

    python bench/simulate_verdicts.py [--reps 2000] [--seed 7] [--budget 3] [--method tango]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from gate.decision import Outcome
from gate.stats import required_items, tango_required_items
from gate.verdict import Policy, TaskEvidence, decide

DISCORDANCES = (0.05, 0.1, 0.2)
SMALL_N = 100  # the docs/statistics.md example for the naive rule's false alarms


def simulate_items(
    rng: np.random.Generator, reps: int, n: int, delta: float, discordance: float, base_accuracy: float = 0.6
) -> tuple[np.ndarray, np.ndarray]:
    """(reps, n) base and checkpoint 0/1 scores with the cell's delta and discordance."""
    p10, p01 = (discordance - delta) / 2, (discordance + delta) / 2
    p11 = base_accuracy - p10
    cells = rng.choice(4, size=(reps, n), p=[p11, p10, p01, 1.0 - p11 - p10 - p01])
    return (cells <= 1).astype(float), ((cells == 0) | (cells == 2)).astype(float)


def naive_fail_rate(base: np.ndarray, ckpt: np.ndarray, budget: float) -> float:
    """REJECTED BASELINE: FAIL when the raw score dropped by more than the budget. Never ship this."""
    return float(np.mean(100.0 * (ckpt.mean(axis=1) - base.mean(axis=1)) < -budget))


def planned_items(budget: float, discordance: float, policy: Policy) -> int:
    pass_plan = tango_required_items if policy.method == "tango" else required_items
    return max(
        pass_plan(budget, discordance, policy.alpha_pass, 0.95),
        required_items(budget, discordance, policy.alpha_fail, 0.9),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=2000, help="replications per cell (default 2000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the random generator (default 7)")
    parser.add_argument("--budget", type=float, default=3.0, help="budget B in points (default 3)")
    parser.add_argument("--method", choices=["tango", "wald"], default="tango", help="test for 0/1 scores")
    args = parser.parse_args()
    budget: float = args.budget
    policy = Policy(composite_budget=None, method=args.method)
    rng = np.random.default_rng(args.seed)
    deltas = (0.0, -budget, -2 * budget, 1.0)
    started = time.monotonic()

    print(
        f"gate fixed-n verdict, one task, B = {budget:g} points, method = {policy.method}, "
        f"alpha_fail = {policy.alpha_fail:g}, alpha_pass = {policy.alpha_pass:g}, {args.reps} reps per cell, "
        f"seed {args.seed}"
    )
    print("targets: false FAIL <= 1% at delta = -B, FAIL >= 90% at -2B, PASS >= 95% at 0\n")
    header = (
        f"{'delta':>7} {'r':>5} {'n':>6} | {'FAIL':>6} {'PASS':>6} {'WARN':>6} | "
        f"{'naive FAIL @n':>13} {f'naive FAIL @{SMALL_N}':>15}"
    )
    print(header)
    print("-" * len(header))
    for discordance in DISCORDANCES:
        n = planned_items(budget, discordance, policy)
        for delta in deltas:
            label = f"{delta:+7.1f} {discordance:5.2f} {n:6d} | "
            if abs(delta) / 100 > discordance:
                print(
                    label + "infeasible: |delta| > r (a delta needs at least that share of items to differ)"
                )
                continue
            base, ckpt = simulate_items(rng, args.reps, n, delta / 100, discordance)
            counts = dict.fromkeys(Outcome, 0)
            for b, c in zip(base, ckpt, strict=True):
                counts[decide([TaskEvidence("t", b, c, budget)], policy).outcome] += 1
            small_base, small_ckpt = simulate_items(rng, args.reps, SMALL_N, delta / 100, discordance)
            fail, passed, warn = (
                100 * counts[o] / args.reps for o in (Outcome.FAIL, Outcome.PASS, Outcome.WARN)
            )
            print(
                f"{label}{fail:5.1f}% {passed:5.1f}% {warn:5.1f}% | "
                f"{100 * naive_fail_rate(base, ckpt, budget):12.1f}% "
                f"{100 * naive_fail_rate(small_base, small_ckpt, budget):14.1f}%"
            )
        print()
    print(
        f"Monte-Carlo standard error: at most {100 * math.sqrt(0.25 / args.reps):.1f} points, "
        f"{100 * math.sqrt(0.01 * 0.99 / args.reps):.2f} at a 1% rate."
    )
    print("naive = the REJECTED raw-drop rule 'FAIL if the score dropped by more than B', for contrast only.")
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
