"""Going past the cap, simulated: a task whose observed discordance is above the planned 0.10, with and without the
time budget that lets it go on into its pool. Paired 0/1 scores with a known delta and discordance stream through
the real gate.evaluate.evaluate_sequential (one task, budget 8 points, cap 400 planned at r = 0.10, pool 2000).

    python bench/simulate_extension.py [--reps 16]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_extension import gate_once  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=16)
    args = parser.parse_args()
    print("| truth (Δ, r) | time budget | FAIL | PASS | WARN | stop reasons of the WARNs | mean items | max items |")
    print("|---|---|---|---|---|---|---|---|")
    for delta, r in ((-0.16, 0.35), (-0.08, 0.35), (0.0, 0.35), (-0.08, 0.1)):
        for budget, label in ((0.0, "0 (within the cap)"), (1e9, "unlimited")):
            runs = [gate_once(delta, r, seed, cap=400, pool=2000, time_budget=budget) for seed in range(args.reps)]
            outcomes = Counter(outcome for outcome, _, _ in runs)
            reasons = Counter(reason for outcome, reason, _ in runs if outcome == "WARN")
            items = [n for _, _, n in runs]
            print(f"| {100 * delta:+.0f} pts, {r:.2f} | {label} | {outcomes['FAIL']} | {outcomes['PASS']} | "
                  f"{outcomes['WARN']} | {dict(reasons) or '-'} | {sum(items) / len(items):.0f} | {max(items)} |",
                  flush=True)


if __name__ == "__main__":
    main()
