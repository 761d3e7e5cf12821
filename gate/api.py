"""The importable entry points: `gate.run(...)` scores a checkpoint against its base and returns a GateResult."""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from gate import distributed
from gate.cache import CachedScorer
from gate.config import GateConfig, parse_config
from gate.decision import Outcome
from gate.drift import Drift, measure_drift
from gate.errors import BadInputError, ConfigError
from gate.evaluate import decide_fixed, evaluate_fixed, evaluate_sequential, score_pairs
from gate.files import atomic_write_text, check_writable_folder
from gate.items import ItemScorer
from gate.loading.backends import VllmOptions
from gate.loading.loaders import ScoringSettings
from gate.loading.references import OutsideLinks, resolve_model
from gate.paths import cache_root
from gate.provenance import installed_versions
from gate.record import build_result, model_info, now, write_outputs
from gate.report import ReportFormat, render_html, render_markdown
from gate.report.compare import compare_results, render_comparison
from gate.result import (
    GateResult,
    ModelInfo,
    load_result,
)
from gate.runconfig import (
    configured,
    fixed_policy,
    resolve_pair,
    result_cache,
    run_inputs,
    scoring_settings,
    sequential_policy,
    suite_and_tasks,
    task_budgets,
)
from gate.runner import ModelPair
from gate.sequential import TaskPlan, composite_reach
from gate.sequential import plan as sequential_plan
from gate.shards import Shard, check_shardable, merge_pairs, read_partials, shard_doc_ids, write_partial
from gate.suites import (
    load_suite,
    suite_fingerprint,
)

log = logging.getLogger("gate")


@contextmanager
def _needs_complete(*paths: Path) -> Iterator[None]:
    """A field a view needs but a saved result lacks becomes a one-line BadInputError naming the field."""
    from jinja2 import UndefinedError

    try:
        yield
    except (UndefinedError, KeyError) as exc:
        names = " or ".join(str(path) for path in paths)
        raise BadInputError(f"{names} lacks a field the report needs ({exc}): pass the file `gate run` wrote") from None


def report(result_path: Path, fmt: ReportFormat = "md") -> str:
    """Render a saved result.json as markdown or a self-contained HTML page; nothing is recomputed."""
    data = load_result(result_path)
    with _needs_complete(result_path):
        return render_html(data) if fmt == "html" else render_markdown(data)


def compare(a_path: Path, b_path: Path, fmt: Literal["md", "html", "json"] = "md") -> str:
    """Two saved results side by side and which checkpoint to ship; BadInputError if their suites differ."""
    a, b = load_result(a_path), load_result(b_path)
    with _needs_complete(a_path, b_path):
        return render_comparison(compare_results(a, b, sources=(str(a_path), str(b_path))), fmt)


def compare_many(paths: Sequence[Path], fmt: Literal["md", "html", "json"] = "md") -> str:
    """Any number of saved results against one base: capabilities x candidates, and which one to ship."""
    from gate.report.candidates import compare_candidates, render_candidates

    results = [load_result(path) for path in paths]
    with _needs_complete(*paths):
        return render_candidates(compare_candidates(results, [str(path) for path in paths]), fmt)


def plan(
    config: GateConfig | Path | None = None, *, suite: str | None = None, data_dir: Path | None = None
) -> list[TaskPlan]:
    """Per task of the suite: items needed for its budget, items planned within its cap, what they can detect."""
    gate_config = configured(config, suite=suite, data_dir=data_dir)
    the_suite, tasks = suite_and_tasks(gate_config)
    budgets = task_budgets(gate_config, the_suite)
    policy = sequential_policy(gate_config, gate_config.composite_budget or the_suite.composite_budget)
    continuous = [task.spec.id for task in tasks if task.spec.scores == "continuous"]
    return sequential_plan(budgets, {task.spec.id: task.cap_units for task in tasks}, policy, continuous=continuous)


def composite_plan(
    rows: Sequence[TaskPlan], config: GateConfig | Path | None = None, *, suite: str | None = None
) -> tuple[float, float, float]:
    """The composite's budget, and the drop it detects and the budget it certifies at the planned items of `rows`
    (plan's answer for the same config and suite)."""
    gate_config = configured(config, suite=suite)
    budget = gate_config.composite_budget or load_suite(gate_config.suite).composite_budget
    policy = sequential_policy(gate_config, budget)
    detectable, certifiable = composite_reach(
        [1.0] * len(rows), [row.discordance for row in rows], [row.planned for row in rows], policy, budget
    )
    return budget, detectable, certifiable


@dataclass(frozen=True)
class Baseline:
    """What `gate baseline` left in the result cache: the base's items per task, and how many were already there."""

    base: str
    cache_dir: Path
    items: dict[str, int]
    reused: int
    scored: int


def baseline(
    *,
    base: str | None = None,
    config: GateConfig | Path | None = None,
    suite: str | None = None,
    data_dir: Path | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
    cache_secret: str | None = None,
) -> Baseline:
    """Score the base on every sampled item of the suite into the result cache, so later gate runs reuse them.

    With `cache_secret` the entries carry its authentication tag (see gate.cache).
    """
    distributed.single_process("gate baseline")
    gate_config = configured(config, base=base, suite=suite, batch_size=batch_size, device=device, data_dir=data_dir)
    cache = result_cache(gate_config, scoring_settings(gate_config), cache_secret)
    if cache is None:
        raise ConfigError("gate baseline fills the result cache, but the config says `cache: false`: remove that")
    model = resolve_model(
        gate_config.base,
        allow_pickle=gate_config.allow_pickle,
        trust_remote_code=gate_config.trust_remote_code,
        cache_dir=cache_root(gate_config.cache_dir),
    )
    inputs = run_inputs(gate_config)
    served = inputs.endpoints.get("base")  # the base alone: both roles are the base
    inputs = replace(inputs, endpoints={"base": served, "checkpoint": served} if served else {})
    tasks = inputs.tasks
    with inputs.model_pair(model, model) as models:
        CachedScorer(models, cache).score("base", tasks, {task.spec.id: task.doc_ids for task in tasks}, progress)
    return Baseline(
        base=model.describe(),
        cache_dir=cache.root,
        items={task.spec.id: len(task.doc_ids) for task in tasks},
        reused=cache.stats.hits["base"],
        scored=cache.stats.scored["base"],
    )


def _drift(models: ModelPair) -> Drift | None:
    """Drift on the probe set; None (with a warning) for a model out of process, or tokenizers allowed to differ."""
    if not (models.in_process("base") and models.in_process("checkpoint")):
        log.warning("drift not measured: it needs both models' full next-token distributions, in this process")
        return None
    if models.model_identity("base")["vocabulary"] != models.model_identity("checkpoint")["vocabulary"]:
        log.warning("drift not measured: the tokenizers differ (allowed by allow_differences)")
        return None
    return measure_drift(
        functools.partial(models.token_logprobs, "base"), functools.partial(models.token_logprobs, "checkpoint")
    )


def run(
    ckpt: str,
    *,
    base: str | None = None,
    config: GateConfig | Path | None = None,
    suite: str | None = None,
    out_dir: Path | None = Path("gate-out"),
    data_dir: Path | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
    html: bool = False,
    outside_links: OutsideLinks = "warn",
    cache_secret: str | None = None,
) -> GateResult:
    """Score `ckpt` and its base on the suite's items, decide the verdict, and write the reports to `out_dir`.

    `outside_links="refuse"` refuses symlinks out of a model folder (the Action, where the folders are the change's);
    `cache_secret` authenticates the result cache's entries (see gate.cache).
    """
    started, clock = now(), time.monotonic()
    if out_dir is not None and distributed.is_main():
        check_writable_folder(out_dir, "--out")  # before anything loads, not after the scoring
    gate_config = configured(config, suite=suite, batch_size=batch_size, device=device, data_dir=data_dir)
    # The suite first: its errors are the cheap ones, and resolving a model hashes its weights (and dequantises a
    # GGUF base an adapter is checked against).
    inputs = run_inputs(gate_config, extend=gate_config.mode == "sequential" and gate_config.time_budget > 0)
    checkpoint, base_model = resolve_pair(ckpt, base, gate_config, outside_links)
    the_suite, tasks, settings = inputs.suite, inputs.tasks, inputs.settings
    budgets, composite_budget = inputs.budgets, inputs.composite_budget
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    processes = distributed.world_size()
    if processes > 1 and (settings.backend != "hf" or inputs.endpoints):
        raise ConfigError(
            f"a data-parallel launch ({processes} processes) needs backend: hf: launch a single process for "
            "vLLM (it spreads over GPUs with vllm.data_parallel_size) or for served models"
        )
    distributed.prepare(settings.device)
    with inputs.model_pair(base_model, checkpoint) as models:
        seconds["load"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        cache = result_cache(gate_config, settings, cache_secret) if processes == 1 else None
        if processes > 1 and gate_config.cache:
            log.info("result cache not used: %d processes share the items of each harness call", processes)
        scorer: ItemScorer = CachedScorer(models, cache) if cache is not None else models
        if gate_config.mode == "fixed":
            evaluation = evaluate_fixed(scorer, tasks, budgets, fixed_policy(gate_config, composite_budget), progress)
        else:
            policy = sequential_policy(gate_config, composite_budget)
            evaluation = evaluate_sequential(scorer, tasks, budgets, policy, progress, gate_config.time_budget)
        seconds["scoring"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        drift = _drift(models)
        seconds["drift"] = round(time.monotonic() - t0, 1)
        drafting_stats = models.drafting_stats()
    seconds["total"] = round(time.monotonic() - clock, 1)
    result = build_result(
        evaluation=evaluation,
        suite=the_suite,
        tasks=tasks,
        checkpoint=model_info(checkpoint),
        base=model_info(base_model),
        config=gate_config,
        settings=settings,
        drift=drift,
        timing={
            "run_id": uuid.uuid4().hex,  # in result.json and report.md alike: the two files of one run
            "started": started,
            "finished": now(),
            "seconds": seconds,
            "looks": evaluation.looks,
            "cache": asdict(cache.stats) if cache is not None else None,
            "drafting": drafting_stats,
            "processes": processes,
        },
    )
    if out_dir is not None and distributed.is_main():
        write_outputs(result, out_dir, html=html)
    return result


# Config keys that may differ between the shards of one run: where caches and mirrors live on each runner.
_MACHINE_LOCAL_KEYS = ("cache", "cache_dir", "data_dir")


def run_shard(
    ckpt: str,
    shard: Shard,
    *,
    base: str | None = None,
    config: GateConfig | Path | None = None,
    suite: str | None = None,
    out_dir: Path = Path("gate-out"),
    data_dir: Path | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
    cache_secret: str | None = None,
) -> Path:
    """Score shard i/n of every task's items on both models and write its partial result; `merge` decides.

    Sharded runs are fixed-n: every sampled item is scored, once, by one of the shards. Shard 1 also measures drift.
    """
    distributed.single_process("gate run --shard")
    started, clock = now(), time.monotonic()
    check_writable_folder(out_dir, "--out")
    gate_config = configured(config, mode="fixed", suite=suite, batch_size=batch_size, device=device, data_dir=data_dir)
    inputs = run_inputs(gate_config)  # shards are fixed-n: never past the cap
    checkpoint, base_model = resolve_pair(ckpt, base, gate_config)
    the_suite, tasks, settings = inputs.suite, inputs.tasks, inputs.settings
    check_shardable(tasks, shard)
    with inputs.model_pair(base_model, checkpoint) as models:
        cache = result_cache(gate_config, settings, cache_secret)
        scorer: ItemScorer = CachedScorer(models, cache) if cache is not None else models
        paired = score_pairs(scorer, tasks, {task.spec.id: shard_doc_ids(task, shard) for task in tasks}, progress)
        drift = _drift(models) if shard.index == 1 else None
    config_data = gate_config.model_dump(by_alias=True, mode="json")
    identity = {
        "suite_fingerprint": suite_fingerprint(the_suite, tasks),
        "checkpoint": asdict(model_info(checkpoint)),
        "base": asdict(model_info(base_model)),
        "config": {key: value for key, value in config_data.items() if key not in _MACHINE_LOCAL_KEYS},
        "settings": asdict(settings),
        "versions": installed_versions(("sft-gate", "lm_eval", "transformers", "torch", "peft")),
    }
    timing = {"started": started, "finished": now(), "seconds": round(time.monotonic() - clock, 1)}
    extra = {"config": config_data, "drift": asdict(drift) if drift else None, "timing": timing}
    return write_partial(out_dir / shard.file_name(), shard, identity, paired, extra)


def merge(
    partial_paths: Sequence[Path],
    *,
    out_dir: Path | None = Path("gate-out"),
    data_dir: Path | None = None,
    html: bool = False,
) -> GateResult:
    """Combine the partial results of all shards into one result and verdict, as one unsharded fixed-n run gives."""
    partials = read_partials(partial_paths)
    gate_config = configured(parse_config(partials[0]["config"], source=str(partial_paths[0])), data_dir=data_dir)
    the_suite, tasks = suite_and_tasks(gate_config)
    if suite_fingerprint(the_suite, tasks) != partials[0]["identity"]["suite_fingerprint"]:
        raise BadInputError(
            f"suite {the_suite.name} differs from the one the shards scored (its fingerprint changed): "
            "merge with the same gate version, suite and data"
        )
    budgets = task_budgets(gate_config, the_suite)
    composite_budget = gate_config.composite_budget or the_suite.composite_budget
    evaluation = decide_fixed(merge_pairs(partials, tasks), budgets, fixed_policy(gate_config, composite_budget))
    identity = partials[0]["identity"]
    drift = partials[0]["drift"]
    result = build_result(
        evaluation=evaluation,
        suite=the_suite,
        tasks=tasks,
        checkpoint=ModelInfo(**identity["checkpoint"]),
        base=ModelInfo(**identity["base"]),
        config=gate_config,
        settings=ScoringSettings(**{**identity["settings"], "vllm": VllmOptions(**identity["settings"]["vllm"])}),
        drift=Drift(**drift) if drift else None,
        timing={"shards": [partial["timing"] for partial in partials], "looks": 1},
    )
    if out_dir is not None:
        write_outputs(result, out_dir, html=html)
    return result


def sweep(
    checkpoints: Sequence[str],
    *,
    base: str | None = None,
    config: GateConfig | Path | None = None,
    suite: str | None = None,
    out_dir: Path = Path("gate-sweep"),
    data_dir: Path | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    require: str = "last",
    stop_at_fail: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Gate every checkpoint of one run in step order (base scored once, through the result cache); write
    sweep.json, sweep.md and sweep.html beside each checkpoint's own result folder; return the sweep record.

    With `stop_at_fail`, the checkpoints after the first FAIL are skipped (recorded as such).
    """
    from gate.report.sweep import render_sweep_html, render_sweep_markdown
    from gate.sweep import SWEEP_FILE, SWEEP_HTML, SWEEP_REPORT, build_record, discover, selected

    distributed.single_process("gate sweep")
    started, clock = now(), time.monotonic()
    points = discover(checkpoints)
    selected(points, require)  # fail before any scoring
    gate_config = configured(config)
    if not gate_config.cache:
        log.warning("gate sweep without the result cache scores the base again for every checkpoint")
    results: dict[str, dict[str, object]] = {}
    for index, point in enumerate(points, start=1):
        label = f"{point.name} ({index}/{len(points)})"
        say = None if progress is None else functools.partial(_prefixed, progress, label)
        if say:
            say("gating")
        result = run(
            str(point.path), base=base, config=gate_config, suite=suite, out_dir=out_dir / point.name,
            data_dir=data_dir, batch_size=batch_size, device=device, progress=say,
        )
        results[point.name] = result.to_dict()
        if say:
            say(f"{result.verdict}: {result.summary}")
        if stop_at_fail and result.verdict == Outcome.FAIL.value:
            break
    record = build_record(
        points, results, out_dir, require=require, stop_at_fail=stop_at_fail,
        timing={"started": started, "finished": now(), "seconds": round(time.monotonic() - clock, 1)},
    )
    atomic_write_text(out_dir / SWEEP_FILE, json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    atomic_write_text(out_dir / SWEEP_REPORT, render_sweep_markdown(record))
    atomic_write_text(out_dir / SWEEP_HTML, render_sweep_html(record))
    return record


def _prefixed(progress: Callable[[str], None], prefix: str, message: str) -> None:
    progress(f"{prefix}: {message}")
