"""Does `core` see moderate forgetting? Full-pool truth and `gate run` verdicts over item-sampling seeds.

For one checkpoint (e.g. from bench/moderate_checkpoints.py):

1. truth: the named tasks' whole pools scored on the base and on the checkpoint (`gate run --mode fixed` with each
   named task's cap raised to its pool, every other task cut to one item); the per-task delta there is the truth.
2. seeds: the default `gate run` (sequential, default gate.yaml but for `seed`) on each item-sampling seed; prints the
   verdict, each task's outcome, delta, items used and stop reason, and the wall time.

Both share one result cache (--cache-dir), so the base's items are scored once: seed runs are warm for the base.

    python bench/moderate_evidence.py CKPT --truth core_facts_mc core_logic_mc --seeds 10 --out bench-out/moderate/s20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gate.suites import load_suite  # noqa: E402


def gate_run(ckpt: str, config: dict[str, object], out: Path, cache_dir: Path) -> tuple[dict[str, object], float]:
    """One `gate run` in a fresh process; its result.json and wall seconds."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "gate.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gate", "run", "--ckpt", ckpt, "--config", str(out / "gate.yaml"),
         "--cache-dir", str(cache_dir), "--out", str(out / "result")],
        env=env, capture_output=True, text=True,
    )
    wall = time.monotonic() - start
    if done.returncode not in (0, 1):
        sys.exit(f"gate run failed ({done.returncode}): {done.stderr.strip().splitlines()[-1]}")
    return json.loads((out / "result" / "result.json").read_text()), wall


def truth(ckpt: str, tasks: list[str], out: Path, cache_dir: Path) -> dict[str, dict[str, float]]:
    """Each named task's delta (points) and discordance on its whole pool."""
    suite = load_suite("core")
    caps = {spec.id: (spec.pool or spec.items) if spec.id in tasks else 1 for spec in suite.tasks}
    result, wall = gate_run(ckpt, {"mode": "fixed", "items": caps}, out / "truth", cache_dir)
    rows = {}
    for task in result["tasks"]:  # type: ignore[attr-defined]
        if task["id"] in tasks:
            rows[task["id"]] = {"delta": task["delta"], "n": task["n_items"], "base": task["base_score"],
                                "ckpt": task["ckpt_score"], "discordance": task["discordance"],
                                "budget": task["budget"]}
    print(f"full-pool truth in {wall:.0f} s: {json.dumps(rows)}", flush=True)
    return rows


def seeds(ckpt: str, count: int, out: Path, cache_dir: Path, first: int) -> None:
    """The default gate on `count` item-sampling seeds, one line per seed and task."""
    for seed in range(first, first + count):
        result, wall = gate_run(ckpt, {"seed": seed}, out / f"seed{seed}", cache_dir)
        tasks = result["tasks"]  # type: ignore[index]
        used = sum(t["n_items"] for t in tasks)
        composite = result.get("composite") or {}  # type: ignore[attr-defined]
        print(f"seed {seed}: {result['verdict']} in {wall:.0f} s, {used} items per model; composite "
              f"{composite.get('delta', float('nan')):+.1f} {composite.get('outcome', '-')}", flush=True)
        for t in tasks:
            print(f"  {t['id']:22} {t['outcome']:4} {t['delta']:+6.1f} [{t['lower']:+.1f}, {t['upper']:+.1f}] "
                  f"budget {t['budget']:4.1f} items {t['n_items']:4d}/{t['planned']:4d} r {t['discordance']:.2f}  "
                  f"{t['stop_reason']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt")
    parser.add_argument("--truth", nargs="*", default=[], help="tasks whose whole pool gives the truth")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=Path("bench-out/moderate/cache"))
    args = parser.parse_args()
    if args.truth:
        truth(args.ckpt, args.truth, args.out, args.cache_dir)
    if args.seeds:
        seeds(args.ckpt, args.seeds, args.out, args.cache_dir, args.first_seed)


if __name__ == "__main__":
    main()
