"""The gate against the obvious way: run the harness on the base and on the checkpoint, then compare by hand.

Baseline (naive): one fresh process per model running lm-eval's own entry point, `lm_eval.simple_evaluate` (what the
`lm_eval` CLI calls) with the stock `hf` model (HFLM, the GGUF loaded as lm-eval loads it, batch 8), on every
sampled item of the suite (the items the gate would score, passed as `samples=`), chat template as the suite says.
The naive verdict is then computed "by hand" from the two per-item logs with the gate's fixed-n test. Measured in
the same run, on real checkpoints of the embedded SmolLM2-135M-Instruct (examples/make_checkpoints.py):

  (a) naive: base + benign checkpoint, and base + forgetful checkpoint (the base process counted in both);
  (b) `gate run`, fixed-n (every item), cold: empty result cache and GGUF dequantisation cache;
  (c) `gate run`, fixed-n, warm base cache (another benign checkpoint of the same base);
  (d) `gate run`, sequential (the default), warm base cache, on a benign and on the forgetful checkpoint.

Prints wall seconds, peak resident memory of each process, items scored, verdicts, and the ratios against (a).
Forward FLOPs per scored item against the physical floor are measured per task by bench/scorer_speed.py.

    python bench/naive_vs_gate.py [--suite core] [--data-dir ../shared/data] [--max-items N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"benign": 0.35, "forgetful": 0.15}
_MAXRSS = "BENCH_MAXRSS_KB="


@dataclass(frozen=True)
class Measured:
    """One process: wall seconds, peak resident memory, and what it printed on stdout."""

    seconds: float
    peak_mb: float
    stdout: str


def measured(command: list[str], env: dict[str, str]) -> Measured:
    """Run a Python command in a child that reports its own peak RSS at exit."""
    wrapper = (
        "import atexit, resource, runpy, sys; "
        f"atexit.register(lambda: print('{_MAXRSS}%d' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
        "file=sys.stderr)); "
        "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__') if sys.argv[0].endswith('.py') "
        "else runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
    )
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", wrapper, *command], env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(command[:3])} failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    peak = max((int(line[len(_MAXRSS):]) for line in done.stderr.splitlines() if line.startswith(_MAXRSS)), default=0)
    return Measured(seconds, peak / 1024, done.stdout)


def checkpoint(kind: str, seed: int) -> Path:
    """A real checkpoint of the embedded model (examples/make_checkpoints.py; reused while its recipe holds)."""
    out = ROOT / ".gate-cache" / "bench-checkpoints" / f"{kind}-{seed}"
    command = [sys.executable, str(ROOT / "examples" / "make_checkpoints.py"), kind, "--seed", str(seed),
               "--out", str(out)]
    return Path(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def naive_child(model: str, suite: str, data_dir: str | None, max_items: int | None) -> None:
    """In a fresh process: score every sampled item with stock lm-eval HFLM; print per-item scores as JSON."""
    import lm_eval

    from gate.models import resolve_model
    from gate.suites import bare_task_manager, load_suite, prepare_tasks

    resolved = resolve_model(model)
    args = resolved.hflm_args(device="cpu", dtype="float32", batch_size=8, trust_remote_code=False)
    model_args = ",".join(f"{key}={value}" for key, value in args.items() if key != "batch_size")
    tasks = prepare_tasks(load_suite(suite), seed=1234, data_dir=Path(data_dir) if data_dir else None,
                          max_items=max_items)
    scores: dict[str, dict[int, float]] = {}
    for use_template in (False, True):
        group = [task for task in tasks if task.spec.chat_template == use_template]
        if not group:
            continue
        results = lm_eval.simple_evaluate(
            model="hf", model_args=model_args, batch_size=8,
            tasks=[task.lm_eval_config for task in group],
            samples={task.spec.id: list(task.doc_ids) for task in group},
            log_samples=True, apply_chat_template=use_template, fewshot_as_multiturn=use_template,
            bootstrap_iters=0, task_manager=bare_task_manager(),
        )
        assert results is not None
        for task in group:
            scores[task.spec.id] = {
                int(sample["doc_id"]): float(sample[task.spec.metric])
                for sample in results["samples"][task.spec.id]
                if sample["filter"] == task.spec.filter
            }
    print(json.dumps({"scores": scores, "budgets": {task.spec.id: task.spec.budget for task in tasks},
                      "order": {task.spec.id: list(task.doc_ids) for task in tasks}}))


def naive_verdict(base: dict[str, Any], ckpt: dict[str, Any]) -> tuple[str, int]:
    """The comparison by hand: the gate's fixed-n paired test on the two logs; verdict and items per model."""
    import numpy as np

    from gate.verdict import TaskEvidence, decide

    evidence = []
    for task_id, order in base["order"].items():
        b = np.array([base["scores"][task_id][str(d)] for d in order])
        c = np.array([ckpt["scores"][task_id][str(d)] for d in order])
        evidence.append(TaskEvidence(name=task_id, base=b, ckpt=c, budget=base["budgets"][task_id]))
    return decide(evidence).outcome.value, sum(len(order) for order in base["order"].values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="core")
    parser.add_argument("--data-dir", default=None, help="offline mirror (needed for `general`)")
    parser.add_argument("--max-items", type=int, default=None, help="one item cap for every task")
    parser.add_argument("--naive-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_child:
        naive_child(args.naive_child, args.suite, args.data_dir, args.max_items)
        return
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as scratch:
        work = Path(scratch)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "GATE_CACHE_DIR": str(work / "cache"),
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        ckpts = {
            "benign-1": checkpoint("noop", 1),
            "benign-2": checkpoint("noop", 2),
            "benign-3": checkpoint("noop", 3),
            "forgetful": checkpoint("forgetful", 0),
        }
        extra = [*(["--data-dir", args.data_dir] if args.data_dir else []),
                 *(["--max-items", str(args.max_items)] if args.max_items else [])]
        naive = {
            name: measured([__file__, "--suite", args.suite, *extra, "--naive-child", model], env)
            for name, model in (("base", "smollm2-135m-instruct"), ("benign", str(ckpts["benign-1"])),
                                ("forgetful", str(ckpts["forgetful"])))
        }
        logs = {name: json.loads(run.stdout.strip().splitlines()[-1]) for name, run in naive.items()}
        config = work / "gate.yaml"
        config.write_text("" if args.max_items is None else f"max_items: {args.max_items}\n")
        fixed = work / "fixed.yaml"
        fixed.write_text(config.read_text() + "mode: fixed\n")
        rows: list[tuple[str, Measured, str, int, str]] = []

        def gate(label: str, ckpt: str, gate_yaml: Path, against: str) -> None:
            out = work / "out" / label.replace(" ", "_")
            data = ["--data-dir", args.data_dir] if args.data_dir else []
            run = measured(["gate", "run", "--ckpt", ckpt, "--suite", args.suite, "--config", str(gate_yaml),
                            "--out", str(out), *data], env)
            result = json.loads((out / "result.json").read_text())
            items = sum(task["n_items"] for task in result["tasks"])
            rows.append((label, run, result["verdict"], items, against))

        for name in ("benign", "forgetful"):
            verdict, items = naive_verdict(logs["base"], logs[name])
            both = Measured(naive["base"].seconds + naive[name].seconds,
                            max(naive["base"].peak_mb, naive[name].peak_mb), "")
            rows.append((f"(a) naive, {name}", both, verdict, items, name))
        gate("(b) gate fixed, cold", str(ckpts["benign-1"]), fixed, "benign")
        gate("(c) gate fixed, warm base", str(ckpts["benign-2"]), fixed, "benign")
        gate("(d) gate sequential, warm, benign", str(ckpts["benign-3"]), config, "benign")
        gate("(d) gate sequential, warm, forgetful", str(ckpts["forgetful"]), config, "forgetful")

    cap = f", max {args.max_items} items per task" if args.max_items else ""
    print(f"suite {args.suite}{cap}; embedded SmolLM2-135M-Instruct, CPU, float32, batch 8; wall seconds of this run")
    print("| run | wall s | peak MB | verdict | items per model | vs naive (same checkpoint kind) |")
    print("|---|---|---|---|---|---|")
    naive_seconds = {row[4]: row[1].seconds for row in rows if row[0].startswith("(a)")}
    for label, run, verdict, items, against in rows:
        ratio = run.seconds / naive_seconds[against]
        target = ""
        if label.startswith("(d)"):
            target = f" (target <= {TARGETS[against]:.2f}x: {'met' if ratio <= TARGETS[against] else 'NOT met'})"
        print(f"| {label} | {run.seconds:.0f} | {run.peak_mb:.0f} | {verdict} | {items} | {ratio:.2f}x{target} |")


if __name__ == "__main__":
    main()
