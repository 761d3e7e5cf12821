"""Drafted greedy generation (gate.drafting) against lm-eval's HFLM greedy generation on the same requests.

For each checkpoint (LoRA adapters of the embedded model from examples/make_checkpoints.py) and each slice of
generation requests (core's generation tasks, GSM8K and IFEval from a mirror), in one process:
  1. HFLM.generate_until on the checkpoint (lm-eval's path): the reference answers and time;
  2. the gate's model records the base's answers (the adapter switched off, as the gate scores an adapter's base);
  3. the checkpoint's greedy generation verifies those drafts: answers and time.
It reports items/s and generated tokens/s of 1 and 3, the speed-up, the tokens accepted per item, and every answer
that differs from HFLM's with the checkpoint's top-2 logit gap at the first differing token (a near-tie below 1e-4).

Usage: python bench/drafted_generation.py --checkpoints DIR [--data-dir MIRROR] [--core-items 10]
       [--gsm8k 8] [--ifeval 4] [--cases noop,gentle,forgetful] [--dtype float32] [--json OUT]
DIR holds one folder per case (make_checkpoints.py KIND --out DIR/KIND). Run on one thread:
OMP_NUM_THREADS=1 nice -n 10 python bench/drafted_generation.py ...
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from gate.drafting import DraftBook
from gate.loading.loaders import load_scorer_model
from gate.loading.references import resolve_model
from gate.scorer import GateHFLM
from gate.suites import bare_task_manager, load_suite, prepare_tasks

SEED = 11
NEAR_TIE = 1e-4


def generation_requests(
    lm: HFLM, data_dir: Path | None, core_items: int, gsm8k: int, ifeval: int
) -> Iterator[tuple[str, list[Instance]]]:
    """(slice, generate_until requests) as the gate builds them: seeded items, chat template where the suite says."""
    wanted = {"gsm8k": gsm8k, "ifeval": ifeval}
    suites: list[tuple[str, Path | None, int]] = [("core", None, core_items)]
    if data_dir is not None and (gsm8k or ifeval):
        suites.append(("general", data_dir, max(gsm8k, ifeval)))
    for suite, mirror, items in suites:
        requests: dict[str, list[Instance]] = {}
        for prepared in prepare_tasks(load_suite(suite), seed=SEED, data_dir=mirror, max_items=items):
            if prepared.lm_eval_config.get("output_type", "generate_until") != "generate_until":
                continue
            count = wanted.get(prepared.spec.id, items) if suite == "general" else items
            if not count:
                continue
            task = bare_task_manager().load([prepared.lm_eval_config])["tasks"][prepared.spec.id]
            template = prepared.spec.chat_template
            task.build_all_requests(
                samples=sorted(prepared.doc_ids[:count]),
                apply_chat_template=template,
                fewshot_as_multiturn=template,
                chat_template=lm.apply_chat_template if template else None,
                tokenizer_name=lm.tokenizer_name if template else "",
            )
            name = "core" if suite == "core" else prepared.spec.id
            requests.setdefault(name, []).extend(task.instances)
        yield from requests.items()


def top2_gap(lm: HFLM, context: str, prefix: list[int]) -> float:
    """The gap between the two largest logits of `lm` after the prompt and the given answer tokens."""
    ids = torch.tensor([lm.tok_encode(context) + prefix])
    with torch.inference_mode():
        logits = lm.model(ids).logits[0, -1].float()
    top = torch.topk(logits, 2).values
    return float(top[0] - top[1])


def first_difference(lm: HFLM, context: str, expected: str, actual: str) -> float:
    """Top-2 logit gap of the model where the two answers' tokens first differ."""
    left = lm.tok_encode(expected, add_special_tokens=False)
    right = lm.tok_encode(actual, add_special_tokens=False)
    common = next((i for i, (a, b) in enumerate(zip(left, right, strict=False)) if a != b), min(len(left), len(right)))
    return top2_gap(lm, context, left[:common])


def run_case(
    path: Path, dtype: str, slices: list[tuple[str, list[Instance]]], books: dict[str, tuple[DraftBook, float]]
) -> list[dict[str, Any]]:
    """Every slice on one checkpoint: HFLM's greedy answers, then the drafted ones; timings and differences.

    The base's answers (the adapter switched off) are recorded into `books` by the first case and reused after.
    """
    args = resolve_model(str(path)).hflm_args(device="cpu", dtype=dtype, batch_size=8, trust_remote_code=False)
    reference = HFLM(**load_args(args))
    gate = load_scorer_model(args)
    assert isinstance(gate, GateHFLM)
    rows = []
    for name, requests in slices:
        t0 = time.perf_counter()
        expected = reference.generate_until(requests, disable_tqdm=True)
        hflm_seconds = time.perf_counter() - t0
        if name not in books:
            book = DraftBook()
            gate.draft_book, gate.draft_role = book, "base"
            with gate.model.disable_adapter():
                t0 = time.perf_counter()
                gate.generate_until(requests, disable_tqdm=True)
                books[name] = (book, time.perf_counter() - t0)
        base, base_seconds = books[name]
        book = DraftBook()  # a fresh book per case: the base's drafts, this case's statistics
        for request in requests:
            book.record_ids(request.args[0], base.ids(request.args[0]) or [])
        gate.draft_book, gate.draft_role = book, "checkpoint"
        t0 = time.perf_counter()
        actual = gate.generate_until(requests, disable_tqdm=True)
        drafted_seconds = time.perf_counter() - t0
        stats = book.stats["checkpoint"]
        tokens = stats.generated_tokens
        differences = [
            {"item": index, "top2_gap": first_difference(gate, request.args[0], want, got)}
            for index, (request, want, got) in enumerate(zip(requests, expected, actual, strict=True))
            if want != got
        ]
        rows.append(
            {
                "case": path.name,
                "slice": name,
                "items": len(requests),
                "tokens": tokens,
                "hflm_seconds": round(hflm_seconds, 2),
                "drafted_seconds": round(drafted_seconds, 2),
                "base_recording_seconds": round(base_seconds, 2),
                "hflm_items_per_s": round(len(requests) / hflm_seconds, 3),
                "drafted_items_per_s": round(len(requests) / drafted_seconds, 3),
                "hflm_tokens_per_s": round(tokens / hflm_seconds, 1),
                "drafted_tokens_per_s": round(tokens / drafted_seconds, 1),
                "speedup": round(hflm_seconds / drafted_seconds, 2),
                "accepted": sorted(stats.accepted),
                "drafted": sorted(stats.drafted),
                "forward_passes": stats.forward_passes,
                "identical": len(requests) - len(differences),
                "differences": differences,
            }
        )
        print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("accepted", "drafted")}), flush=True)
    return rows


def load_args(args: dict[str, Any]) -> dict[str, Any]:
    """HFLM arguments for the dequantised copy of a GGUF model (what the gate's scorer loads)."""
    from gate.loading.gguf import dequantised_folder

    args = dict(args)
    gguf_file = args.pop("gguf_file", None)
    if gguf_file:
        args["pretrained"] = str(dequantised_folder(Path(args["pretrained"]) / gguf_file))
    return args


def describe(accepted: list[int]) -> str:
    """min / median / max tokens accepted per item."""
    if not accepted:
        return "-"
    return f"{accepted[0]} / {statistics.median(accepted):g} / {accepted[-1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--core-items", type=int, default=10)
    parser.add_argument("--gsm8k", type=int, default=8)
    parser.add_argument("--ifeval", type=int, default=4)
    parser.add_argument("--cases", default="noop,gentle,forgetful")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    torch.set_num_threads(1)
    cases = options.cases.split(",")
    slices: list[tuple[str, list[Instance]]] | None = None
    rows = []
    books: dict[str, tuple[DraftBook, float]] = {}
    for case in cases:
        path = options.checkpoints / case
        if slices is None:
            probe = HFLM(**load_args(resolve_model("smollm2-135m-instruct").hflm_args(
                device="cpu", dtype=options.dtype, batch_size=8, trust_remote_code=False)))
            slices = list(generation_requests(probe, options.data_dir, options.core_items, options.gsm8k,
                                              options.ifeval))
            del probe
        rows += run_case(path, options.dtype, slices, books)
    print(f"\nmachine: {platform.machine()}, {torch.get_num_threads()} torch thread, dtype {options.dtype}")
    print("| checkpoint | slice | items | tokens | HFLM items/s | drafted items/s | HFLM tok/s | drafted tok/s "
          "| speed-up | accepted per item (min / median / max) | identical |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['slice']} | {row['items']} | {row['tokens']} | {row['hflm_items_per_s']} "
              f"| {row['drafted_items_per_s']} | {row['hflm_tokens_per_s']} | {row['drafted_tokens_per_s']} "
              f"| {row['speedup']}x | {describe(row['accepted'])} | {row['identical']}/{row['items']} |")
    for row in rows:
        for difference in row["differences"]:
            print(f"difference: {row['case']} {row['slice']} item {difference['item']}: "
                  f"top-2 logit gap {difference['top2_gap']:.2e}"
                  f"{' (near-tie)' if difference['top2_gap'] < NEAR_TIE else ''}")
    if options.json:
        options.json.write_text(json.dumps({"argv": sys.argv, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
