"""lm-eval's HFLM against the gate's shared-prefix scorer, on the same requests in one run.

On the embedded SmolLM2-135M-Instruct (Q4_1 GGUF dequantised to float32), scores the loglikelihood requests of a
seeded sample of HellaSwag and ARC-Easy items (the `general` suite's task specs, offline mirror) with each, and
prints wall time, requests/s, the speed ratio, the largest log-likelihood difference, and forward FLOPs per item
against the floor. Also times loading: HFLM from the GGUF file, the scorer on a cold and on a warm dequantisation
cache (a fresh temporary GATE_CACHE_DIR). About 8 minutes for 200 items per task on one CPU thread.

One torch thread by default: on a shared machine, intra-op threads that wait on each other make timings swing
several-fold, while the ratio of the two scorers is what this measures.

FLOPs count matrix products only (attention scores are a few percent at these lengths): 2 * (parameters outside
the embeddings) per token entering the model, padding included, plus 2 * (lm_head parameters) per position whose
logits are computed. The floor runs each distinct context once and each continuation token once, with logits
only where a token is scored (the last context position serves every choice's first token).

    python bench/scorer_speed.py [--items 200] [--seed 0] [--batch-size 8] [--threads 1] [--data-dir MIRROR]
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.loading.references import resolve_model
from gate.suites import bare_task_manager, load_suite, prepare_tasks

MODEL = "smollm2-135m-instruct"
TASKS = ("hellaswag", "arc_easy")


@dataclass(frozen=True)
class Timing:
    """One scorer's pass over one task's requests."""

    seconds: float
    flops: float
    answers: list[tuple[float, bool]]


def requests(items: int, seed: int, data_dir: Path) -> dict[str, list[Any]]:
    """The loglikelihood requests lm-eval builds for a seeded sample of each task, by task id."""
    general = load_suite("general")
    suite = general.model_copy(update={"tasks": [general.task(task) for task in TASKS]})
    built = {}
    for prepared in prepare_tasks(suite, seed=seed, data_dir=data_dir, max_items=items):
        task = bare_task_manager().load([prepared.lm_eval_config])["tasks"][prepared.spec.id]
        task.build_all_requests(samples=list(prepared.doc_ids))
        built[prepared.spec.id] = list(task.instances)
    return built


def flop_rates(model: Any) -> tuple[float, float]:
    """FLOPs per token through the model body, and per position through the lm_head."""
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    total = sum(p.numel() for p in model.parameters())  # a tied lm_head is counted once, as the embedding
    body = total - embed.numel() - (0 if head is embed else head.numel())
    return 2.0 * body, 2.0 * head.numel()


def timed(lm: Any, instances: list[Any]) -> Timing:
    """Score the requests once, counting the tokens that enter the model and the positions given logits."""
    counts = {"body": 0, "head": 0}

    def count(key: str) -> Callable[[Any, tuple[Any, ...]], None]:
        def hook(_: Any, args: tuple[Any, ...]) -> None:
            counts[key] += args[0].numel() // (args[0].shape[-1] if key == "head" else 1)

        return hook

    model = lm.model
    hooks = [
        model.get_input_embeddings().register_forward_pre_hook(count("body")),
        model.get_output_embeddings().register_forward_pre_hook(count("head")),
    ]
    started = time.perf_counter()
    answers = lm.loglikelihood(instances, disable_tqdm=True)
    seconds = time.perf_counter() - started
    for hook in hooks:
        hook.remove()
    body, head = flop_rates(model)
    return Timing(seconds, body * counts["body"] + head * counts["head"], answers)


def floor_flops(lm: Any, instances: list[Any]) -> float:
    """The FLOPs of one pass over each distinct context and each continuation token, logits where scored."""
    from gate.scorer import group_by_context

    encoded = [(None, *lm._encode_pair(*instance.args)) for instance in instances]
    contexts, _ = group_by_context(encoded, lm.max_length)
    tails = sum(len(cont) - 1 for c in contexts for cont in c.continuations)
    body, head = flop_rates(lm.model)
    return body * (sum(len(c.tokens) for c in contexts) + tails) + head * (len(contexts) + tails)


def load_times(model_args: dict[str, Any]) -> tuple[dict[str, float], Any, Any]:
    """Seconds to load HFLM from the GGUF file and the scorer cold and warm; returns both warm models too."""
    from lm_eval.models.huggingface import HFLM

    from gate.loading.loaders import load_scorer_model

    seconds = {}
    started = time.perf_counter()
    reference = HFLM(**model_args)
    seconds["HFLM from the GGUF file"] = time.perf_counter() - started
    for label in ("gate scorer, cold cache (dequantise, write)", "gate scorer, warm cache"):
        gc.collect()
        started = time.perf_counter()
        scorer = load_scorer_model(model_args)
        seconds[label] = time.perf_counter() - started
    return seconds, reference, scorer


def main() -> None:
    """Parse arguments, load, score with both, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200, help="items per task (seeded sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    default_data = os.environ.get("GATE_DATA_DIR")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(default_data) if default_data else None, required=not default_data,
        help="offline mirror of the general suite (gate mirror export; default GATE_DATA_DIR)",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="gate-bench-cache-") as cache:
        os.environ["GATE_CACHE_DIR"] = cache
        model_args = resolve_model(MODEL).hflm_args(
            device="cpu", dtype="float32", batch_size=args.batch_size, trust_remote_code=False
        )
        loads, reference, scorer = load_times(model_args)
        built = requests(args.items, args.seed, args.data_dir)
        rows, checks = [], []
        for task_id, instances in built.items():
            hf, gate = timed(reference, instances), timed(scorer, instances)
            floor = floor_flops(scorer, instances)
            diff = max(abs(a - b) for (a, _), (b, _) in zip(hf.answers, gate.answers, strict=True))
            flips = sum(a != b for (_, a), (_, b) in zip(hf.answers, gate.answers, strict=True))
            items = len({instance.doc_id for instance in instances})
            for name, run in (("lm-eval HFLM", hf), ("gate scorer", gate)):
                rows.append(
                    f"| {task_id} | {name} | {items} | {len(instances)} | {run.seconds:.1f} | "
                    f"{len(instances) / run.seconds:.1f} | {run.flops / items / 1e9:.2f} | {floor / items / 1e9:.2f} | "
                    f"{run.flops / floor:.2f}x | {hf.seconds / run.seconds:.2f}x |"
                )
            checks.append(f"{task_id}: max |loglik difference| {diff:.1e}, greedy flags differing: {flips}")

    print(
        f"\n{MODEL}, float32, CPU, {args.threads} thread(s), batch size {args.batch_size}, seed {args.seed}, "
        f"mirror {args.data_dir}\n"
    )
    print("| load | seconds |\n|---|---|")
    print("\n".join(f"| {label} | {seconds:.1f} |" for label, seconds in loads.items()))
    print(
        "\n| task | scorer | items | requests | wall s | requests/s | GFLOPs/item | floor GFLOPs/item | "
        "x floor | speed vs HFLM |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    print("\n".join(rows))
    print("\nagainst HFLM, per request: " + "; ".join(checks))


if __name__ == "__main__":
    main()
