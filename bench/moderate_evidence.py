"""Does `core` see moderate forgetting? Full-pool truth and `gate run` verdicts over item-sampling seeds.

For one checkpoint (e.g. from bench/moderate_checkpoints.py):

1. truth: the named tasks' whole pools scored on the base and on the checkpoint (`gate run --mode fixed` with each
   named task's cap raised to its pool, every other task cut to one item); the per-task delta there is the truth.
2. seeds: the default `gate run` (sequential, default gate.yaml but for `seed`) on each item-sampling seed; prints the
   verdict, each task's outcome, delta, items used and stop reason, and the wall time.
3. replay (--replay, no model run): for each truth task and seed, the real sequential test on the per-item scores
   that step 1 left in the result cache, in the item order `gate run --seed N` draws, at the FAIL level the task has
   in the whole suite (Bonferroni over its tasks and the composite); once held within the cap (time_budget 0) and
   once free to go on into the pool. A truth task that FAILs FAILs its checkpoint, whatever the other tasks do.
   Beside them, core v1's design for that task (its budget and cap, no going past it) on the same per-item data:
   not a run of v1 (whose items and prompts differ a little), but what v1's budget and cap make of this evidence.

All share one result cache (--cache-dir), so the base's items are scored once.

    python bench/moderate_evidence.py CKPT --truth core_math_gen core_logic_mc --seeds 0 --replay 10 --out OUT
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gate.config import GateConfig  # noqa: E402
from gate.evaluate import evaluate_sequential  # noqa: E402
from gate.items import ItemOutput, ModelScores  # noqa: E402
from gate.runconfig import sequential_policy  # noqa: E402
from gate.suites import PreparedTask, load_suite, prepare_tasks  # noqa: E402


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
        delta = composite.get("delta")
        print(f"seed {seed}: {result['verdict']} in {wall:.0f} s, {used} items per model; composite "
              f"{'not reached' if delta is None else f'{delta:+.1f}'} {composite.get('outcome', '-')}", flush=True)
        for t in tasks:
            if not t.get("reached", True):
                print(f"  {t['id']:22} not reached (no items: the gate stopped at its first FAIL)", flush=True)
                continue
            print(f"  {t['id']:22} {t['outcome']:4} {t['delta']:+6.1f} [{t['lower']:+.1f}, {t['upper']:+.1f}] "
                  f"budget {t['budget']:4.1f} items {t['n_items']:4d}/{t['planned']:4d} r {t['discordance']:.2f}  "
                  f"{t['stop_reason']}", flush=True)


# core v1's budget and cap per task (the suite before issue 25).
V1_DESIGN = {"core_facts_mc": (9.0, 150), "core_facts_gen": (17.0, 60), "core_math_gen": (21.0, 50),
             "core_logic_mc": (11.0, 150), "core_reading_mc": (12.0, 80), "core_instructions_gen": (24.0, 40),
             "core_format_gen": (17.0, 60)}


class CachedPair:
    """Both models' per-item scores on the truth tasks, read from the result cache that the truth run filled."""

    def __init__(self, cache_dir: Path, fingerprints: dict[str, str], tasks: list[str]) -> None:
        self.scores: dict[str, dict[str, dict[int, float]]] = {role: {} for role in fingerprints}
        for role, fingerprint in fingerprints.items():
            for path in (cache_dir / "results" / fingerprint.removeprefix("sha256:")).glob("*.json"):
                entry = json.loads(path.read_text())
                if entry["key"]["task"] in tasks:
                    items = {int(i["doc_id"]): float(i["score"]) for i in entry["items"].values()}
                    self.scores[role].setdefault(entry["key"]["task"], {}).update(items)
        self.items = 0

    def score(self, role: str, tasks: list[PreparedTask], doc_ids: dict[str, list[int]], progress: object = None
              ) -> ModelScores:
        outputs = {t.spec.id: [ItemOutput(i, self.scores[role][t.spec.id][i], "", "", "", None)
                               for i in doc_ids[t.spec.id]] for t in tasks}
        self.items += sum(len(o) for o in outputs.values()) if role == "base" else 0
        return ModelScores(outputs, {t.spec.id: False for t in tasks})


def replay(out: Path, cache_dir: Path, count: int, first: int) -> None:
    """The sequential test per truth task and seed on the cached full-pool scores (see the module docstring)."""
    result = json.loads((out / "truth" / "result" / "result.json").read_text())
    tasks = [t["id"] for t in result["tasks"] if t["n_items"] > 1]
    pair = CachedPair(cache_dir, {"base": result["base"]["fingerprint"],
                                  "checkpoint": result["checkpoint"]["fingerprint"]}, tasks)
    suite = load_suite("core")
    suite_policy = sequential_policy(GateConfig(), suite.composite_budget)
    # One task alone, at the level it has among the suite's tasks and the composite: alpha_fail / members.
    members = suite_policy.family(len(suite.tasks))
    policy = dataclasses.replace(suite_policy, alpha_fail=suite_policy.alpha_fail / members, composite_budget=None)
    print("| task | seed | v1 design | items | v2 within the cap | items | v2 past the cap | items | stop reason |")
    print("|---|---|---|---|---|---|---|---|---|")
    for seed in range(first, first + count):
        prepared = {t.spec.id: t for t in prepare_tasks(suite, seed=seed, extend=True)}
        for task_id in tasks:
            task = prepared[task_id]
            missing = [i for i in task.doc_ids if i not in pair.scores["checkpoint"].get(task_id, {})]
            if missing:
                sys.exit(f"{task_id}: {len(missing)} items not in the cache: run --truth {task_id} first")
            v1_budget, v1_cap = V1_DESIGN[task_id]
            v1_task = dataclasses.replace(task, doc_ids=task.doc_ids[:v1_cap], cap=None)
            row = []
            for design, budget, time_budget in ((v1_task, v1_budget, 0.0), (task, task.spec.budget, 0.0),
                                                (task, task.spec.budget, float("inf"))):
                pair.items = 0
                evaluation = evaluate_sequential(pair, [design], {task_id: budget}, policy, time_budget=time_budget)
                row.append((evaluation.outcome.value, pair.items, evaluation.reasons[task_id]))
            cells = " | ".join(f"{outcome} | {items}" for outcome, items, _ in row)
            print(f"| {task_id} | {seed} | {cells} | {row[2][2]} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt")
    parser.add_argument("--truth", nargs="*", default=[], help="tasks whose whole pool gives the truth")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--replay", type=int, default=0, help="seeds of the replay on the truth tasks' cached scores")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=Path("bench-out/moderate/cache"))
    args = parser.parse_args()
    if args.truth:
        truth(args.ckpt, args.truth, args.out, args.cache_dir)
    if args.seeds:
        seeds(args.ckpt, args.seeds, args.out, args.cache_dir, args.first_seed)
    if args.replay:
        replay(args.out, args.cache_dir, args.replay, args.first_seed)


if __name__ == "__main__":
    main()
