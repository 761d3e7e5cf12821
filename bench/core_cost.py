"""What deciding a checkpoint on the default `core` suite costs on this machine: wall time and items per task.

Checkpoints from examples/make_checkpoints.py (built or reused). In one fresh result cache, in this order:

  1. cold:   `gate run` on the benign `gentle` adapter, nothing cached (both models scored, models loaded);
  2. warm:   `gate run` on the benign `noop` adapter (an untrained LoRA), the base's items read from the cache that
             run 1 filled (items run 1 did not reach are scored afresh);
  3. smoke:  `gate run` on the `forgetful` demo adapter, cold (its own cache), which must FAIL in the smoke stage;
  4. smoke, base cached: the same on the cache of runs 1 and 2, as a pull request's run after a nightly baseline.

Targets (issue 25): benign decided in <= 3 min warm, <= 8 min cold; forgetful FAILs in the smoke stage in < 1 min.

With --baseline-batch-size B, every run is made twice, at the default batch size and at B (each with caches of its
own, the two interleaved run by run so that the machine's drift hits both alike), and a table of wall-time ratios
follows: how the default compares with the named baseline in the same session.

    python bench/core_cost.py [--out bench-out/core-cost] [--baseline-batch-size 8]
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
sys.path.insert(0, str(ROOT / "bench"))

from real_checkpoints import make_checkpoint  # noqa: E402


def gate_run(
    ckpt: Path, out: Path, cache_dir: Path, batch_size: int | None = None
) -> tuple[dict[str, object], float]:
    """One default `gate run` (at `batch_size` if given) in a fresh process: its result.json and wall seconds."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "gate", "run", "--ckpt", str(ckpt), "--cache-dir", str(cache_dir)]
    command += ["--out", str(out)] + (["--batch-size", str(batch_size)] if batch_size else [])
    start = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if done.returncode not in (0, 1):
        sys.exit(f"gate run on {ckpt} failed ({done.returncode}): {done.stderr.strip().splitlines()[-1]}")
    return json.loads((out / "result.json").read_text()), wall


def show(label: str, result: dict[str, object], wall: float) -> None:
    tasks = result["tasks"]  # type: ignore[index]
    timing = result["timing"]  # type: ignore[index]
    cache = timing.get("cache") or {}  # type: ignore[attr-defined]
    print(f"\n{label}: {result['verdict']} in {wall:.0f} s wall (load {timing['seconds'].get('load')} s, scoring "
          f"{timing['seconds'].get('scoring')} s), {timing['looks']} looks, "
          f"{sum(t['n_items'] for t in tasks)} items per model; cache {json.dumps(cache)}")
    for t in tasks:
        if not t.get("reached", True):
            print(f"  {t['id']:22} not reached (no items: the gate stopped at its first FAIL)")
            continue
        print(f"  {t['id']:22} {t['outcome']:4} {t['delta']:+6.1f} budget {t['budget']:4.1f} "
              f"items {t['n_items']:4d}/{t['planned']:4d}  {t['stop_reason']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-out/core-cost"))
    parser.add_argument("--baseline-batch-size", type=int, help="also run everything at this batch size, to compare")
    args = parser.parse_args()
    ckpts = {kind: make_checkpoint(kind)[0] for kind in ("gentle", "noop", "forgetful")}
    runs = (
        ("cold, benign (gentle)", ckpts["gentle"], "cache"),
        ("warm base, benign (noop)", ckpts["noop"], "cache"),
        ("cold, forgetful", ckpts["forgetful"], "cache-forgetful"),
        ("base cached, forgetful", ckpts["forgetful"], "cache"),
    )
    batch_sizes = [None, args.baseline_batch_size] if args.baseline_batch_size else [None]
    walls: dict[tuple[str, int | None], float] = {}
    for label, ckpt, cache in runs:
        for batch_size in batch_sizes:
            suffix = f"-batch{batch_size}" if batch_size else ""
            out = args.out / (label.replace(", ", "-").replace(" ", "-") + suffix)
            result, wall = gate_run(ckpt, out, args.out / (cache + suffix), batch_size)
            show(label + (f", batch size {batch_size}" if batch_size else ", default batch size"), result, wall)
            walls[label, batch_size] = wall
    if args.baseline_batch_size:
        print(f"\n| run | wall, default batch size | wall, batch size {args.baseline_batch_size} | ratio |")
        print("|---|---|---|---|")
        for label, _, _ in runs:
            default, baseline = walls[label, None], walls[label, args.baseline_batch_size]
            print(f"| {label} | {default:.0f} s | {baseline:.0f} s | {default / baseline:.2f}x |")


if __name__ == "__main__":
    main()
