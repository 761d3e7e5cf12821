"""Would sampling flip-prone items more often decide a task on fewer items, at equal error rates? (issue 25)

bench/flip_margins.py found a fine-tune's flips concentrated on the items where the base's margin (top minus second
choice log-likelihood) is smallest. This simulates the design that would exploit it, out of sample, on the real
per-item scores of two checkpoints' whole multiple-choice pools, before anything is built:

- strata: the base's margin fifths on each pool (base data only: known before any checkpoint is scored);
- allocation, fitted on one checkpoint (--fit): Neyman's, each stratum drawn with probability proportional to its
  share times its root-mean-square paired difference on that checkpoint, mixed with a fifth of the proportional
  allocation so that no stratum goes unsampled (a stratum without flips on the fitting checkpoint may have them on
  the next);
- tested on the other checkpoint (--test), whose pool is the population. Scenarios: its measured differences, and
  the same pool with extra regressions injected (base-right items the checkpoint now gets wrong) until the truth
  is -B (the budget's edge: a FAIL there is the error the FAIL level bounds) or -2B (the design regression),
  injected either where the fitting checkpoint's flips were (margin-following) or uniformly (margin-blind: the
  lever's premise fails);
- designs, each at the level the task has in the core suite, with the gate's default sequence (design betting,
  anytime-valid), looked at after every item: uniform (the gate: the pool in a seeded random order) against
  weighted (strata drawn by the allocation, an item uniformly within its stratum, with replacement; each draw's
  difference times share / probability of its stratum estimates Delta without bias; divided by the largest such
  weight, the units stay in [-1, 1], which the betting martingale needs to be valid at every n).

Both designs are anytime-valid at the same levels, so their error rates are bounded alike; the table shows the
measured rates beside the items each needs. Either stops undecided (WARN) after as many items as the pool holds.

    python bench/simulate_weighted.py --cache-dir CACHE --margins M.json --fit A/result.json --test B/result.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from flip_margins import BINS, MC_TASKS, cached_scores, margin_fifths  # noqa: E402

from gate.sequential import SequentialPolicy  # noqa: E402
from gate.stats import ConfidenceSequence  # noqa: E402

STRATA = BINS
DEFENSIVE = 0.2  # share of the proportional allocation mixed into Neyman's
CORE_TASKS = 7


@dataclasses.dataclass(frozen=True)
class Pool:
    """One task's pool: the base's scores and margin strata, and a checkpoint's scores."""

    base: NDArray[np.float64]
    ckpt: NDArray[np.float64]
    stratum: NDArray[np.intp]


def load_pool(cache: Path, margins: dict[int, float], truth: dict[str, object], task: str) -> Pool:
    base = cached_scores(cache, truth["base"]["fingerprint"], task)  # type: ignore[index]
    ckpt = cached_scores(cache, truth["checkpoint"]["fingerprint"], task)  # type: ignore[index]
    ids = sorted(set(margins) & set(base) & set(ckpt))
    _, stratum = margin_fifths(np.array([margins[i] for i in ids]))
    return Pool(np.array([base[i] for i in ids]), np.array([ckpt[i] for i in ids]), stratum)


def allocation(fit: Pool, defensive: float) -> NDArray[np.float64]:
    """Each stratum's draw probability: Neyman on the fitting checkpoint, mixed with the proportional one."""
    d = fit.ckpt - fit.base
    share = np.bincount(fit.stratum, minlength=STRATA) / fit.stratum.size
    rms = np.array([np.sqrt(np.mean(d[fit.stratum == s] ** 2)) for s in range(STRATA)])
    neyman = share * rms / np.sum(share * rms) if np.sum(share * rms) > 0 else share
    q: NDArray[np.float64] = (1.0 - defensive) * neyman + defensive * share
    return q


def injected(pool: Pool, target: float, where: NDArray[np.float64], rng: np.random.Generator) -> Pool:
    """The pool with base-right, checkpoint-right items turned wrong until its Delta is `target` (a proportion),
    each chosen with probability proportional to `where` of its stratum."""
    ckpt = pool.ckpt.copy()
    needed = round(float(np.mean(ckpt - pool.base) - target) * ckpt.size)
    eligible = np.flatnonzero((pool.base == 1.0) & (ckpt == 1.0))
    if needed <= 0:
        return pool
    p = where[pool.stratum[eligible]]
    chosen = rng.choice(eligible, size=min(needed, eligible.size), replace=False, p=p / p.sum())
    ckpt[chosen] = 0.0
    return Pool(pool.base, ckpt, pool.stratum)


def first_decision(upper: ConfidenceSequence, lower: ConfidenceSequence, units: NDArray[np.float64],
                   null: float, fail_alpha: float, pass_alpha: float) -> tuple[NDArray[np.str_], NDArray[np.intp]]:
    """Per row of units: FAIL, PASS or WARN, and the units used (the first prefix that decides, else all)."""
    fail = upper.p_values(units, null) < fail_alpha
    passed = (lower.p_values(units, null) < pass_alpha) & ~fail
    n = units.shape[1]
    first_fail = np.where(fail.any(axis=1), fail.argmax(axis=1), n)
    first_pass = np.where(passed.any(axis=1), passed.argmax(axis=1), n)
    outcome = np.where(first_fail < first_pass, "FAIL", np.where(first_pass < n, "PASS", "WARN"))
    used = np.minimum(np.minimum(first_fail, first_pass) + 1, n)
    return outcome, used


def simulate(
    pool: Pool, q: NDArray[np.float64], budget: float, reps: int, seed: int, policy: SequentialPolicy
) -> dict[str, dict[str, float]]:
    d = pool.ckpt - pool.base
    n = d.size
    rng = np.random.default_rng(seed)
    upper, lower = policy.task_sequences(CORE_TASKS, budget, n, policy.decides_from(n))
    null, fail_alpha = -budget / 100.0, policy.task_fail_alpha(CORE_TASKS)
    uniform = np.stack([d[rng.permutation(n)] for _ in range(reps)])
    share = np.bincount(pool.stratum, minlength=STRATA) / n
    weight = share / q
    members = [np.flatnonzero(pool.stratum == s) for s in range(STRATA)]
    strata = rng.choice(STRATA, size=(reps, n), p=q)
    items = np.empty((reps, n), dtype=np.intp)
    for s in range(STRATA):
        mask = strata == s
        items[mask] = rng.choice(members[s], size=int(mask.sum()))
    top = float(weight.max())
    weighted = d[items] * weight[strata] / top
    # The weighted units' scale is the largest weight: the design alternative scales with it, and the bettor's prior
    # second moment is what the planning discordance gives these units (the uniform design's prior, nothing learnt
    # from the pool under test).
    second = policy.planning_discordance * float(np.sum(q * (weight / top) ** 2))
    w_upper = dataclasses.replace(upper, gap=upper.gap / top, prior_discordance=min(1.0, second))
    w_lower = dataclasses.replace(lower, gap=lower.gap / top, prior_discordance=min(1.0, second))
    rows = {}
    for name, units, (up, low), scale in (
        ("uniform", uniform, (upper, lower), 1.0),
        ("weighted", weighted, (w_upper, w_lower), top),
    ):
        outcome, used = first_decision(up, low, units, null / scale, fail_alpha, policy.alpha_pass)
        rows[name] = {
            "FAIL": float(np.mean(outcome == "FAIL")),
            "PASS": float(np.mean(outcome == "PASS")),
            "WARN": float(np.mean(outcome == "WARN")),
            "mean_items": float(used.mean()),
            "median_items": float(np.median(used)),
        }
    # To first order, what a fixed-n test would save: the uniform draw's variance over the weighted draw's.
    mean = float(d.mean())
    var_weighted = float(np.sum(q * np.array([np.mean((d[m] * weight[s]) ** 2) for s, m in enumerate(members)])))
    rows["weighted"]["variance_ratio"] = (float(np.mean(d**2)) - mean**2) / max(var_weighted - mean**2, 1e-12)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--margins", type=Path, required=True, help="bench/flip_margins.py's base margins")
    parser.add_argument("--fit", type=Path, required=True, help="truth result.json of the checkpoint to fit on")
    parser.add_argument("--test", type=Path, required=True, help="truth result.json of the checkpoint to test on")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--budget", type=float, default=8.0, help="the MC tasks' budget in points")
    parser.add_argument("--sequence", choices=("design-betting", "normal-mixture"), default="design-betting")
    parser.add_argument("--defensive", type=float, default=DEFENSIVE, help="share of the proportional allocation")
    args = parser.parse_args()
    policy = SequentialPolicy(sequence=args.sequence)
    margins = {k: {int(i): v for i, v in rows.items()} for k, rows in json.loads(args.margins.read_text()).items()}
    fit_truth, test_truth = json.loads(args.fit.read_text()), json.loads(args.test.read_text())
    fit_name, test_name = args.fit.parts[-4], args.test.parts[-4]
    print(f"allocation fitted on {fit_name}, tested on {test_name}; {args.reps} sampling seeds per row; budget "
          f"{args.budget} points; defensive share {args.defensive}; sequence {args.sequence}")
    print("| task | scenario | true delta (pts) | discordance | design | FAIL | PASS | WARN | mean items | "
          "median items | uniform / weighted | variance ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for task in MC_TASKS:
        fit = load_pool(args.cache_dir, margins[task], fit_truth, task)
        test = load_pool(args.cache_dir, margins[task], test_truth, task)
        q = allocation(fit, args.defensive)
        fit_d = fit.ckpt - fit.base
        follow = np.array([np.mean(fit_d[fit.stratum == s] != 0) for s in range(STRATA)]) + 1e-3
        blind = np.ones(STRATA)
        b = args.budget / 100.0
        scenarios = {
            "measured": test,
            "-B, margin-following": injected(test, -b, follow, rng),
            "-B, margin-blind": injected(test, -b, blind, rng),
            "-2B, margin-following": injected(test, -2 * b, follow, rng),
            "-2B, margin-blind": injected(test, -2 * b, blind, rng),
        }
        shown = ", ".join(f"{x:.2f}" for x in q)
        print(f"| {task} | allocation (strata by rising margin): {shown} | | | | | | | | | | |")
        for label, pool in scenarios.items():
            d = pool.ckpt - pool.base
            rows = simulate(pool, q, args.budget, args.reps, 1, policy)
            ratio = rows["uniform"]["mean_items"] / rows["weighted"]["mean_items"]
            for design, row in rows.items():
                extra = f"{ratio:.2f}x | {row['variance_ratio']:.2f}x" if design == "weighted" else " | "
                print(
                    f"| {task} | {label} | {100 * d.mean():+.1f} | {np.mean(d != 0):.3f} | {design} | "
                    f"{row['FAIL']:.3f} | {row['PASS']:.3f} | {row['WARN']:.3f} | {row['mean_items']:.0f} | "
                    f"{row['median_items']:.0f} | {extra} |"
                )


if __name__ == "__main__":
    main()
