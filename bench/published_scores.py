"""Our scores of the embedded SmolLM2-135M-Instruct against its published numbers, same shots and metric.

Scores the base model on a seeded sample of each task through the gate's own code (the `general` suite's task
specs, its seeded sampling, the offline mirror, the runner) and prints a markdown table: our score with its 95%
interval, the published number, and whether the gap is within 3 points and within the interval. Zero-shot,
plain prompts, as both published sources ran them. Takes about 5 minutes for 300 items per task on 2 CPU cores.

    python bench/published_scores.py [--items 300] [--seed 1234] [--data-dir MIRROR] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from gate.loading.loaders import ScoringSettings
from gate.loading.references import resolve_model
from gate.runner import ModelPair
from gate.suites import load_suite, prepare_tasks

MODEL = "smollm2-135m-instruct"
CARD = "model card (lighteval, bf16)"
LM_EVAL = "lm-eval on bf16 weights"
TOLERANCE = 3.0  # points: the bar for "lands on the published number"
Z95 = 1.959964

Measure = tuple[str, str]  # (general suite task id, per-item metric)


@dataclass(frozen=True)
class Published:
    """A published number and the measurements whose mean reproduces it."""

    label: str
    parts: tuple[Measure, ...]
    value: float
    source: str


PUBLISHED = (
    Published("HellaSwag acc_norm", (("hellaswag", "acc_norm"),), 40.9, CARD),
    Published("ARC mean(Easy, Challenge) acc_norm", (("arc_easy", "acc_norm"), ("arc_challenge", "acc_norm")), 37.3,
              CARD),
    Published("PIQA acc_norm", (("piqa", "acc_norm"),), 66.3, CARD),
    Published("ARC-Challenge acc_norm", (("arc_challenge", "acc_norm"),), 27.7, LM_EVAL),
    Published("ARC-Easy acc", (("arc_easy", "acc"),), 54.1, LM_EVAL),
    Published("HellaSwag acc_norm", (("hellaswag", "acc_norm"),), 43.0, LM_EVAL),
    Published("PIQA acc_norm", (("piqa", "acc_norm"),), 66.9, LM_EVAL),
)


@dataclass(frozen=True)
class Estimate:
    """A mean score in points with its standard error, over n items."""

    mean: float
    se: float
    n: int


def measure(items: int, seed: int, data_dir: Path, batch_size: int) -> dict[Measure, Estimate]:
    """Score the base on `items` seeded items of every measured task, one variant per (task, metric)."""
    general = load_suite("general")
    needed = sorted({part for ref in PUBLISHED for part in ref.parts})
    variants = [
        general.task(task).model_copy(update={"id": f"{task}.{metric}", "metric": metric}) for task, metric in needed
    ]
    suite = general.model_copy(update={"tasks": variants})
    tasks = prepare_tasks(suite, seed=seed, data_dir=data_dir, max_items=items)
    base = resolve_model(MODEL)
    with ModelPair(base, base, ScoringSettings(batch_size=batch_size)) as models:
        scores = models.score("base", tasks, {t.spec.id: t.doc_ids for t in tasks}, progress=print)
    estimates = {}
    for (task, metric), prepared in zip(needed, tasks, strict=True):
        values = [o.score for o in scores.outputs[prepared.spec.id]]
        p = sum(values) / len(values)
        estimates[task, metric] = Estimate(100 * p, 100 * math.sqrt(p * (1 - p) / len(values)), len(values))
    return estimates


def table(estimates: dict[Measure, Estimate]) -> str:
    """The markdown table of ours vs published, one row per published number."""
    rows = [
        "| published number | source | n | ours (95% interval) | published | gap | within 3 pts | within interval |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ref in PUBLISHED:
        parts = [estimates[part] for part in ref.parts]
        mean = sum(e.mean for e in parts) / len(parts)
        half = Z95 * math.sqrt(sum(e.se**2 for e in parts)) / len(parts)
        gap = mean - ref.value
        n = "+".join(str(e.n) for e in parts)
        rows.append(
            f"| {ref.label} | {ref.source} | {n} | {mean:.1f} ± {half:.1f} | {ref.value:.1f} | {gap:+.1f} | "
            f"{'yes' if abs(gap) <= TOLERANCE else 'NO'} | {'yes' if abs(gap) <= half else 'no'} |"
        )
    return "\n".join(rows)


def main() -> None:
    """Parse arguments, score, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=300, help="items per task (seeded sample)")
    parser.add_argument("--seed", type=int, default=1234)
    default_data = os.environ.get("GATE_DATA_DIR")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(default_data) if default_data else None, required=not default_data,
        help="offline mirror of the general suite (gate mirror export; default GATE_DATA_DIR)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    started = time.monotonic()
    estimates = measure(args.items, args.seed, args.data_dir, args.batch_size)
    print(f"\n{MODEL}, zero-shot, plain prompts, {args.items} seeded items per task (seed {args.seed}), "
          f"mirror {args.data_dir}, {time.monotonic() - started:.0f} s\n")
    print(table(estimates))


if __name__ == "__main__":
    main()
