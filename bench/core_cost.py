"""What deciding a checkpoint on the default `core` suite costs on this machine: wall time and items per task.

Checkpoints from examples/make_checkpoints.py (built or reused). In one fresh result cache, in this order:

  1. cold:   `gate run` on the benign `gentle` adapter, nothing cached (both models scored, models loaded);
  2. warm:   `gate run` on the benign `noop` adapter (an untrained LoRA), the base's items read from the cache that
             run 1 filled (items run 1 did not reach are scored afresh);
  3. smoke:  `gate run` on the `forgetful` demo adapter, cold (its own cache), which must FAIL in the smoke stage.

Targets (issue 25): benign decided in <= 3 min warm, <= 8 min cold; forgetful FAILs in the smoke stage in < 1 min.

    python bench/core_cost.py [--out bench-out/core-cost]
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


def gate_run(ckpt: Path, out: Path, cache_dir: Path) -> tuple[dict[str, object], float]:
    """One default `gate run` in a fresh process: its result.json and wall seconds."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gate", "run", "--ckpt", str(ckpt), "--cache-dir", str(cache_dir), "--out", str(out)],
        env=env, capture_output=True, text=True,
    )
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
        print(f"  {t['id']:22} {t['outcome']:4} {t['delta']:+6.1f} budget {t['budget']:4.1f} "
              f"items {t['n_items']:4d}/{t['planned']:4d}  {t['stop_reason']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-out/core-cost"))
    args = parser.parse_args()
    ckpts = {kind: make_checkpoint(kind)[0] for kind in ("gentle", "noop", "forgetful")}
    shared = args.out / "cache"
    runs = (
        ("cold, benign (gentle)", ckpts["gentle"], shared),
        ("warm base, benign (noop)", ckpts["noop"], shared),
        ("cold, forgetful", ckpts["forgetful"], args.out / "cache-forgetful"),
    )
    for label, ckpt, cache in runs:
        result, wall = gate_run(ckpt, args.out / label.split(",")[0].replace(" ", "-") / ckpt.name, cache)
        show(label, result, wall)


if __name__ == "__main__":
    main()
