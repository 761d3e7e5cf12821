"""The sequential gate on three real fine-tunes of the embedded SmolLM2-135M-Instruct: verdicts, items used, wall time.

Checkpoints (examples/make_checkpoints.py): `noop`, an untrained LoRA adapter (exactly the base); `gentle`, a short
low-learning-rate SFT on the base's own answers plus a few domain examples; `forgetful`, a narrow high-learning-rate
SFT that answers everything with its domain string. Each is gated with a cold `gate run` (no result cache), default
gate.yaml, on the `core` suite. Expected: PASS, PASS (or WARN with its interval), FAIL within the smoke stage.

    python bench/real_checkpoints.py [--suite core] [--out bench-out/real]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("noop", "gentle", "forgetful")


def make_checkpoint(kind: str) -> tuple[Path, float]:
    """The checkpoint folder (built, or reused when its recipe is unchanged) and the seconds it took."""
    start = time.monotonic()
    printed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "make_checkpoints.py"), kind],
        check=True, capture_output=True, text=True,
    ).stdout
    return Path(printed.strip().splitlines()[-1]), time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="core")
    parser.add_argument("--out", type=Path, default=Path("bench-out/real"))
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    rows = []
    for kind in KINDS:
        ckpt, made = make_checkpoint(kind)
        out = args.out / kind
        start = time.monotonic()
        finished = subprocess.run(
            [sys.executable, "-m", "gate", "run", "--ckpt", str(ckpt), "--suite", args.suite, "--no-cache",
             "--out", str(out)],
            env=env, capture_output=True, text=True,
        )
        wall = time.monotonic() - start
        if finished.returncode not in (0, 1):
            sys.exit(f"gate run on {kind} failed ({finished.returncode}): {finished.stderr.strip().splitlines()[-1]}")
        result = json.loads((out / "result.json").read_text())
        rows.append((kind, made, wall, result))
    print(f"suite {args.suite}; cold runs (no result cache); wall seconds on this machine")
    for kind, made, wall, result in rows:
        used = sum(task["n_items"] for task in result["tasks"])
        planned = sum(task["planned"] for task in result["tasks"])
        print(f"\n{kind}: {result['verdict']} in {wall:.0f} s (checkpoint made or reused in {made:.0f} s), "
              f"{used} of {planned} planned items per model, {result['timing']['looks']} look(s); "
              f"drift KL {result['drift']['kl_mean']:.3f} nats/token, flip rate {result['drift']['flip_rate']:.2f}")
        print(f"  {'task':24} {'outcome':>7} {'delta':>7} {'interval':>17} {'budget':>6} {'items':>9}  stopped because")
        for task in result["tasks"]:
            if not task.get("reached", True):
                print(f"  {task['id']:24} {'not reached (no items: the gate stopped at its first FAIL)':>42}")
                continue
            interval = f"[{task['lower']:+.1f}, {task['upper']:+.1f}]"
            items = f"{task['n_items']}/{task['planned']}"
            print(f"  {task['id']:24} {task['outcome']:>7} {task['delta']:+7.1f} {interval:>17} {task['budget']:6.1f} "
                  f"{items:>9}  {task['stop_reason']}")


if __name__ == "__main__":
    main()
