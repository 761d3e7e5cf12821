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

Prints wall seconds, peak resident memory of each process, items scored, verdicts, the ratios against (a), and
forward FLOPs per model-item against the physical floor. FLOPs count the matrix products of every nn.Linear call
in the process (2 x rows x in x out: the model body, the lm_head where logits are computed, LoRA; attention scores
are a few percent at these lengths and left out; the gate's drift probe is in its count). A model-item is one item
scored by one model with a forward pass: the naive pair scores each item twice; a warm gate run takes the base's
from its cache. The floor runs each distinct context of an item once and each continuation or generated token
once, with logits only where a token is scored (bench/scorer_speed.py's floor, per item, from the naive logs).

    python bench/naive_vs_gate.py [--suite core] [--data-dir MIRROR] [--max-items N]
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
_FLOPS = "BENCH_LINEAR_FLOPS="


@dataclass(frozen=True)
class Measured:
    """One process (or the naive pair): wall seconds, peak resident memory, nn.Linear FLOPs, its stdout."""

    seconds: float
    peak_mb: float
    flops: float
    stdout: str


def measured(command: list[str], env: dict[str, str]) -> Measured:
    """Run a Python command in a child that counts its nn.Linear FLOPs and reports them and its peak RSS at exit."""
    wrapper = (
        "import atexit, resource, runpy, sys, torch; "
        "flops = [0]; linear = torch.nn.Linear.forward; "
        "torch.nn.Linear.forward = lambda self, x: "
        "(flops.__setitem__(0, flops[0] + 2 * x.numel() * self.out_features), linear(self, x))[1]; "
        f"atexit.register(lambda: print('{_MAXRSS}%d' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
        f"'{_FLOPS}%d' % flops[0], file=sys.stderr)); "
        "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__') if sys.argv[0].endswith('.py') "
        "else runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
    )
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", wrapper, *command], env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(command[:3])} failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    report = next(line for line in reversed(done.stderr.splitlines()) if line.startswith(_MAXRSS))
    peak, flops = (int(field.split("=")[1]) for field in report.split())
    return Measured(seconds, peak / 1024, float(flops), done.stdout)


@dataclass(frozen=True)
class Row:
    """One line of the table: a run, its verdict, the items it scored per task, and what it is compared with.

    base_share is the fraction of the base's items it ran through the model (the rest came from the cache).
    """

    label: str
    run: Measured
    verdict: str
    docs: dict[str, list[int]]
    against: str
    base_share: float

    @property
    def items(self) -> int:
        return sum(map(len, self.docs.values()))


def checkpoint(kind: str, seed: int) -> Path:
    """A real checkpoint of the embedded model (examples/make_checkpoints.py; reused while its recipe holds)."""
    out = ROOT / ".gate-cache" / "bench-checkpoints" / f"{kind}-{seed}"
    command = [sys.executable, str(ROOT / "examples" / "make_checkpoints.py"), kind, "--seed", str(seed),
               "--out", str(out)]
    return Path(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def naive_child(model: str, suite: str, data_dir: str | None, max_items: int | None) -> None:
    """In a fresh process: score every sampled item with stock lm-eval HFLM; print per-item scores as JSON."""
    import lm_eval

    from gate.loading.references import resolve_model
    from gate.suites import bare_task_manager, load_suite, prepare_tasks

    resolved = resolve_model(model)
    args = resolved.hflm_args(device="cpu", dtype="float32", batch_size=8, trust_remote_code=False)
    model_args = ",".join(f"{key}={value}" for key, value in args.items() if key != "batch_size")
    tasks = prepare_tasks(load_suite(suite), seed=1234, data_dir=Path(data_dir) if data_dir else None,
                          max_items=max_items)
    scores: dict[str, dict[int, float]] = {}
    texts: dict[str, dict[int, Any]] = {}  # what each item ran through the model, for the FLOPs floor
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
            samples = [s for s in results["samples"][task.spec.id] if s["filter"] == task.spec.filter]
            scores[task.spec.id] = {int(sample["doc_id"]): float(sample[task.spec.metric]) for sample in samples}
            texts[task.spec.id] = {
                int(sample["doc_id"]): (
                    {"prompt": sample["arguments"][0][0], "generated": sample["resps"][0][0]}
                    if task.lm_eval_config.get("output_type") == "generate_until"
                    else {"pairs": [list(args[:2]) for args in sample["arguments"]]}
                )
                for sample in samples
            }
    print(json.dumps({"scores": scores, "budgets": {task.spec.id: task.spec.budget for task in tasks},
                      "order": {task.spec.id: list(task.doc_ids) for task in tasks}, "texts": texts}))


def floor_flops(logs: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per task and doc id, the FLOPs floor of scoring the item as a naive log shows it (see the module docstring).

    Tokenised as lm-eval's HFLM does (trailing context whitespace moves to the continuation); the rates are the
    embedded model's (bench/scorer_speed.py's flop_rates, on an empty model built from its config).
    """
    import torch
    import transformers
    from scorer_speed import flop_rates

    from gate.loading.gguf import dequantised_folder
    from gate.loading.references import resolve_model

    model = resolve_model("smollm2-135m-instruct")
    folder = dequantised_folder(Path(model.pretrained) / str(model.gguf_file))
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    config = transformers.AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        body, head = flop_rates(transformers.AutoModelForCausalLM.from_config(config))  # type: ignore[no-untyped-call]

    def tokens(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False).input_ids)

    def item_floor(item: dict[str, Any]) -> float:
        if "prompt" in item:  # one pass over the prompt, one per generated token (and one to decide the stop)
            generated = len(tokens(item["generated"]))
            return body * (len(tokens(item["prompt"])) + generated) + head * (generated + 1)
        contexts: set[tuple[int, ...]] = set()
        tails = 0
        for context, continuation in item["pairs"]:
            spaces = len(context) - len(context.rstrip())
            context, continuation = context[: len(context) - spaces], context[len(context) - spaces :] + continuation
            prefix = tokens(context)
            contexts.add(tuple(prefix))
            tails += len(tokens(context + continuation)) - len(prefix) - 1
        return body * (sum(map(len, contexts)) + tails) + head * (len(contexts) + tails)

    return {task: {doc: item_floor(item) for doc, item in items.items()} for task, items in logs["texts"].items()}


def naive_verdict(base: dict[str, Any], ckpt: dict[str, Any]) -> str:
    """The comparison by hand: the gate's fixed-n paired test on the two logs."""
    import numpy as np

    from gate.verdict import TaskEvidence, decide

    evidence = []
    for task_id, order in base["order"].items():
        b = np.array([base["scores"][task_id][str(d)] for d in order])
        c = np.array([ckpt["scores"][task_id][str(d)] for d in order])
        evidence.append(TaskEvidence(name=task_id, base=b, ckpt=c, budget=base["budgets"][task_id]))
    return str(decide(evidence).outcome.value)


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
        rows: list[Row] = []

        def gate(label: str, ckpt: str, gate_yaml: Path, against: str) -> None:
            out = work / "out" / label.replace(" ", "_")
            data = ["--data-dir", args.data_dir] if args.data_dir else []
            run = measured(["gate", "run", "--ckpt", ckpt, "--suite", args.suite, "--config", str(gate_yaml),
                            "--out", str(out), *data], env)
            result = json.loads((out / "result.json").read_text())
            docs = {task["id"]: [item[0] for item in task["items"]] for task in result["tasks"]}
            items = sum(map(len, docs.values()))
            cache = result["timing"]["cache"]
            base_share = 1.0 if cache is None else cache["scored"]["base"] / items
            rows.append(Row(label, run, result["verdict"], docs, against, base_share))

        for name in ("benign", "forgetful"):
            verdict = naive_verdict(logs["base"], logs[name])
            pair = (naive["base"], naive[name])
            both = Measured(sum(r.seconds for r in pair), max(r.peak_mb for r in pair), sum(r.flops for r in pair), "")
            rows.append(Row(f"(a) naive, {name}", both, verdict, logs["base"]["order"], name, 1.0))
        gate("(b) gate fixed, cold", str(ckpts["benign-1"]), fixed, "benign")
        gate("(c) gate fixed, warm base", str(ckpts["benign-2"]), fixed, "benign")
        gate("(d) gate sequential, warm, benign", str(ckpts["benign-3"]), config, "benign")
        gate("(d) gate sequential, warm, forgetful", str(ckpts["forgetful"]), config, "forgetful")
        os.environ["GATE_CACHE_DIR"] = env["GATE_CACHE_DIR"]  # the dequantised model is there by now
        floors = {name: floor_flops(log) for name, log in logs.items()}

    cap = f", max {args.max_items} items per task" if args.max_items else ""
    print(f"suite {args.suite}{cap}; embedded SmolLM2-135M-Instruct, CPU, float32, batch 8; wall seconds of this run")
    print("| run | wall s | peak MB | verdict | items per model | GFLOPs per model-item | x floor "
          "| vs naive (same checkpoint kind) |")
    print("|---|---|---|---|---|---|---|---|")
    naive_seconds = {row.against: row.run.seconds for row in rows if row.label.startswith("(a)")}
    for row in rows:
        ratio = row.run.seconds / naive_seconds[row.against]
        target = ""
        if row.label.startswith("(d)"):
            met = ratio <= TARGETS[row.against]
            target = f" (target <= {TARGETS[row.against]:.2f}x: {'met' if met else 'NOT met'})"
        floor = sum(floors[row.against][task][str(doc)] + row.base_share * floors["base"][task][str(doc)]
                    for task, docs in row.docs.items() for doc in docs)
        model_items = row.items * (1.0 + row.base_share)
        print(f"| {row.label} | {row.run.seconds:.0f} | {row.run.peak_mb:.0f} | {row.verdict} | {row.items} | "
              f"{row.run.flops / model_items / 1e9:.2f} | {row.run.flops / floor:.2f}x | {ratio:.2f}x{target} |")


if __name__ == "__main__":
    main()
