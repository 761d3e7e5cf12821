"""Where do a fine-tune's flips happen? The base's per-item margin on core's multiple-choice pools, against flips.

Issue 25's last lever: sample low-margin items more often, with inverse-probability weights inside the test, if the
base's confidence tells where a checkpoint's answers flip. This measures it before anything is built:

1. the base's margin on every item of each multiple-choice pool: the log-likelihood of its top choice minus that of
   its second (lm-eval's own per-choice log-likelihoods, through the gate's scorer);
2. per checkpoint, the flips (items whose score differs between base and checkpoint) from the result cache that
   bench/moderate_evidence.py --truth filled, by quintile of the base's margin;
3. the best that margin-proportional sampling could do: Neyman allocation over the quintiles, its sampling
   probability proportional to each quintile's root-mean-square paired difference, measured on the very data it is
   judged on (an optimistic bound: a real design would estimate the allocation beforehand, from another checkpoint).
   The ratio of the uniform estimator's variance to the weighted one's is how many times fewer items the weighted
   test would need for the same error rates, to first order.

    python bench/flip_margins.py --cache-dir CACHE --truth OUT/truth/result/result.json [...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gate.config import GateConfig  # noqa: E402
from gate.runconfig import configured, resolve_pair, run_inputs  # noqa: E402
from gate.runner import _evaluate  # noqa: E402
from gate.suites import bare_task_manager  # noqa: E402

MC_TASKS = ("core_facts_mc", "core_logic_mc", "core_reading_mc")
BINS = 5


def base_margins(base_ref: str, cache_dir: Path) -> dict[str, dict[int, float]]:
    """The base's top-minus-second log-likelihood on every item of each multiple-choice pool."""
    config = configured(GateConfig(cache_dir=str(cache_dir)), suite="core", batch_size=None, device=None, data_dir=None)
    checkpoint, base = resolve_pair(base_ref, None, config)
    inputs = run_inputs(config, extend=True)
    tasks = [t for t in inputs.tasks if t.spec.id in MC_TASKS]
    margins: dict[str, dict[int, float]] = {}
    with inputs.model_pair(base, checkpoint) as models:
        lm, model, context = models._active("base")
        with context:
            results = _evaluate(
                lm,
                model,
                tasks=[t.lm_eval_config for t in tasks],
                samples={t.spec.id: sorted(t.doc_ids) for t in tasks},
                log_samples=True,
                bootstrap_iters=0,
                use_cache=None,
                cache_requests=False,
                task_manager=bare_task_manager(),
            )
    assert results is not None
    for task in tasks:
        rows = {}
        for sample in results["samples"][task.spec.id]:
            lls = sorted((float(r[0]) for r in sample["filtered_resps"]), reverse=True)
            rows[int(sample["doc_id"])] = lls[0] - lls[1]
        margins[task.spec.id] = rows
    return margins


def cached_scores(cache_dir: Path, fingerprint: str, task: str) -> dict[int, float]:
    """One model's per-item scores on a task, from the result cache."""
    scores: dict[int, float] = {}
    for path in (cache_dir / "results" / fingerprint.removeprefix("sha256:")).glob(f"{task}-*.json"):
        entry = json.loads(path.read_text())
        scores.update({int(i["doc_id"]): float(i["score"]) for i in entry["items"].values()})
    return scores


def margin_fifths(margins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The quantile edges of the base's margins and each item's fifth (0 = the lowest margins)."""
    edges = np.quantile(margins, np.linspace(0, 1, BINS + 1))
    return edges, np.clip(np.searchsorted(edges, margins, side="right") - 1, 0, BINS - 1)


def analyse(name: str, margins: dict[int, float], base: dict[int, float], ckpt: dict[int, float]) -> str:
    """A markdown row per margin quintile, and the Neyman bound on the items saved."""
    ids = sorted(set(margins) & set(base) & set(ckpt))
    m = np.array([margins[i] for i in ids])
    d = np.array([ckpt[i] - base[i] for i in ids])
    edges, which = margin_fifths(m)
    lines = []
    rms = np.zeros(BINS)
    share = np.zeros(BINS)
    for b in range(BINS):
        sel = which == b
        share[b] = sel.mean()
        rms[b] = float(np.sqrt(np.mean(d[sel] ** 2))) if sel.any() else 0.0
        lines.append(
            f"| {name} | {b + 1} | {edges[b]:.2f} to {edges[b + 1]:.2f} | {sel.sum()} | "
            f"{int(np.abs(d[sel]).sum())} | {np.abs(d[sel]).mean():.3f} |"
        )
    mean = d.mean()
    uniform = np.mean(d**2) - mean**2
    # Neyman: q_b proportional to rms_b; the weighted estimator's variance per draw is (sum_b share_b rms_b)^2 - mean^2.
    weighted = float(np.sum(share * rms)) ** 2 - mean**2
    ratio = uniform / weighted if weighted > 0 else float("inf")
    flips = int(np.abs(d).sum())
    low = np.abs(d[which == 0]).sum() / max(flips, 1)
    lines.append(f"| {name} | all | | {len(ids)} | {flips} | {np.abs(d).mean():.3f} |")
    summary = (
        f"{name}: {flips} flips on {len(ids)} items; {low:.0%} of them in the lowest-margin fifth; "
        f"Neyman bound on items saved: {ratio:.2f}x"
    )
    return "\n".join(lines) + "\n\n" + summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, required=True, help="the result cache moderate_evidence.py filled")
    parser.add_argument("--truth", type=Path, nargs="+", required=True, help="truth runs' result.json files")
    parser.add_argument("--margins", type=Path, default=Path("bench-out/flip-margins.json"))
    args = parser.parse_args()
    truths = [json.loads(p.read_text()) for p in args.truth]
    if args.margins.is_file():
        margins = {k: {int(i): v for i, v in rows.items()} for k, rows in json.loads(args.margins.read_text()).items()}
    else:
        margins = base_margins(truths[0]["base"]["reference"], args.cache_dir)
        args.margins.parent.mkdir(parents=True, exist_ok=True)
        args.margins.write_text(json.dumps(margins))
    print("| checkpoint · task | margin fifth | base margin (nats) | items | flips | flip rate |")
    print("|---|---|---|---|---|---|")
    summaries = []
    for truth, path in zip(truths, args.truth, strict=True):
        for task in MC_TASKS:
            base = cached_scores(args.cache_dir, truth["base"]["fingerprint"], task)
            ckpt = cached_scores(args.cache_dir, truth["checkpoint"]["fingerprint"], task)
            table, summary = analyse(f"{path.parts[-4]} · {task}", margins[task], base, ckpt).split("\n\n")
            print(table)
            summaries.append(summary)
    print("\n" + "\n".join(summaries))


if __name__ == "__main__":
    main()
