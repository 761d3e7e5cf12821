"""A second checkpoint of the same base, gated with the base's results from the cache, against the first run.

Baseline: `gate run` on a first checkpoint with an empty result cache (scores the base and the checkpoint).
Measured: `gate run` on a second checkpoint of the same base, same suite and settings, with the cache the first run
filled (scores the checkpoint only); the GGUF dequantisation cache is warm for both. Both are real CLI runs on the
embedded SmolLM2-135M-Instruct, timed in this one run; the checkpoints are two untrained LoRA adapters of different
seeds (examples/make_checkpoints.py noop: distinct weights, base behaviour), so both runs decide the same way on the
same items. Prints both wall times, the items each scored, and the ratio against the target (second run at most
0.60x the first).

    python bench/cache_reuse.py [--suite core] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.60


def checkpoint(seed: int) -> Path:
    """An untrained LoRA adapter of the embedded model (examples/make_checkpoints.py; reused while its recipe holds)."""
    out = ROOT / ".gate-cache" / "bench-checkpoints" / f"noop-{seed}"
    command = [sys.executable, str(ROOT / "examples" / "make_checkpoints.py"), "noop", "--seed", str(seed),
               "--out", str(out)]
    printed = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return Path(printed.strip().splitlines()[-1])


def gate_run(ckpt: Path, suite: str, cache: Path, out: Path, env: dict[str, str]) -> tuple[float, dict[str, object]]:
    """Wall seconds of one `gate run` CLI call and its result.json."""
    command = [sys.executable, "-m", "gate", "run", "--ckpt", str(ckpt), "--suite", suite, "--cache-dir", str(cache),
               "--out", str(out)]
    start = time.monotonic()
    finished = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if finished.returncode not in (0, 1):
        sys.exit(f"gate run failed ({finished.returncode}): {finished.stderr.strip().splitlines()[-1]}")
    reused = [line for line in finished.stderr.splitlines() if "reused from the result cache" in line]
    print(f"  {ckpt.name}: {len(reused)} log line(s) say the cache served items", file=sys.stderr)
    return seconds, json.loads((out / "result.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="core")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable timings on a shared box)")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        first_ckpt, second_ckpt = checkpoint(1), checkpoint(2)
        cache = work / "cache"
        env["GATE_CACHE_DIR"] = str(cache)
        # Both runs load the base from the dequantised-GGUF disk cache: only the result cache differs between them.
        warm = ("from pathlib import Path; from gate.loading.references import resolve_model; "
                "from gate.loading.gguf import dequantised_folder; m = resolve_model('smollm2-135m-instruct'); "
                "dequantised_folder(Path(m.pretrained) / str(m.gguf_file))")
        subprocess.run([sys.executable, "-c", warm], env=env, check=True)
        rows = []
        for name, ckpt in (("first run, empty cache", first_ckpt), ("second checkpoint, cached base", second_ckpt)):
            seconds, result = gate_run(ckpt, args.suite, cache, work / ckpt.name / "out", env)
            stats = result["timing"]["cache"]  # type: ignore[index]
            rows.append((name, seconds, result["verdict"], stats))
    print(f"suite {args.suite}, embedded SmolLM2-135M-Instruct, {args.threads} torch thread(s)")
    print(f"{'run':34} {'wall s':>8} {'verdict':>8} {'base scored':>12} {'base cached':>12} {'ckpt scored':>12}")
    for name, seconds, verdict, stats in rows:
        print(f"{name:34} {seconds:8.1f} {verdict:>8} {stats['scored']['base']:12d} {stats['hits']['base']:12d} "
              f"{stats['scored']['checkpoint']:12d}")
    ratio = rows[1][1] / rows[0][1]
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"ratio second/first: {ratio:.2f}x (target <= {TARGET_RATIO:.2f}x: {verdict})")


if __name__ == "__main__":
    main()
