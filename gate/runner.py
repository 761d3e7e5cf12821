"""Drives lm-eval on the base and the checkpoint with identical settings; returns per-item paired results."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gate.errors import BadInputError, RuntimeFault
from gate.models import ResolvedModel
from gate.suites import PreparedTask, bare_task_manager

log = logging.getLogger("gate")


@dataclass(frozen=True)
class ScoringSettings:
    """Everything that must be identical for the base and the checkpoint."""

    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 8
    trust_remote_code: bool = False


@dataclass(frozen=True)
class ItemOutput:
    """One model's result on one item: its score and what it answered."""

    doc_id: int
    score: float
    answer: str
    target: str
    prompt: str
    cluster: str | None


@dataclass(frozen=True)
class ItemPair:
    """The base's and the checkpoint's results on the same item."""

    doc_id: int
    base_score: float
    ckpt_score: float
    base_answer: str
    ckpt_answer: str
    target: str
    prompt: str
    cluster: str | None


@dataclass(frozen=True)
class PairedTask:
    """A task's items scored on both models, in the seeded order; `chat_template` is the setting both used."""

    task: PreparedTask
    items: tuple[ItemPair, ...]
    chat_template: bool


@dataclass(frozen=True)
class ModelScores:
    """One model's per-item outputs per task id, and whether its chat template was applied per task."""

    outputs: dict[str, list[ItemOutput]]
    chat_template: dict[str, bool]


ProgressHook = Callable[[str], None]


def _answer_of(sample: dict[str, Any], output_type: str, metric: str) -> str:
    responses = sample["filtered_resps"]
    if output_type == "multiple_choice":
        continuations = [str(args[1]) for args in sample["arguments"]]
        logliks = [float(r[0]) for r in responses]
        if metric.endswith("_norm"):
            logliks = [ll / max(len(c), 1) for ll, c in zip(logliks, continuations, strict=True)]
        return continuations[max(range(len(logliks)), key=logliks.__getitem__)].strip()
    first = responses[0] if isinstance(responses, list) and responses else responses
    return str(first[0] if isinstance(first, list | tuple) and first else first)


def _target_of(sample: dict[str, Any], output_type: str) -> str:
    target = sample["target"]
    if output_type == "multiple_choice" and isinstance(target, int):
        continuations = [str(args[1]) for args in sample["arguments"]]
        if 0 <= target < len(continuations):
            return continuations[target].strip()
    return str(target)


def _outputs(task: PreparedTask, samples: list[dict[str, Any]]) -> list[ItemOutput]:
    spec = task.spec
    output_type = str(task.lm_eval_config.get("output_type", "generate_until"))
    by_doc: dict[int, dict[str, Any]] = {}
    for sample in samples:
        if sample["filter"] == spec.filter:
            by_doc[int(sample["doc_id"])] = sample
    missing = [d for d in task.doc_ids if d not in by_doc]
    if missing:
        raise RuntimeFault(f"lm-eval returned no '{spec.filter}' result for task {spec.id} item {missing[0]}")
    outputs = []
    for doc_id in task.doc_ids:
        sample = by_doc[doc_id]
        if spec.metric not in sample:
            raise BadInputError(
                f"task {spec.id} has no per-item metric '{spec.metric}' (it logs {sample['metrics']}): "
                "fix `metric` in the suite spec"
            )
        cluster = sample["doc"].get(spec.cluster_field) if spec.cluster_field else None
        outputs.append(
            ItemOutput(
                doc_id=doc_id,
                score=float(sample[spec.metric]),
                answer=_answer_of(sample, output_type, spec.metric),
                target=_target_of(sample, output_type),
                prompt=str(sample["arguments"][0][0]),
                cluster=None if cluster is None else str(cluster),
            )
        )
    return outputs


def _load(model: ResolvedModel, settings: ScoringSettings) -> Any:
    from lm_eval.models.huggingface import HFLM

    args = model.hflm_args(
        device=settings.device, dtype=settings.dtype, batch_size=settings.batch_size,
        trust_remote_code=settings.trust_remote_code,
    )
    try:
        return HFLM(**args)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RuntimeFault(f"{model.describe()} failed to load ({reason}): check that the files are complete") from None


def score_model(
    model: ResolvedModel,
    tasks: Sequence[PreparedTask],
    settings: ScoringSettings,
    progress: ProgressHook | None = None,
) -> ModelScores:
    """Load one model once and score every task on its sampled items, in the seeded order."""
    import lm_eval

    lm = _load(model, settings)
    has_template = getattr(lm.tokenizer, "chat_template", None) is not None
    outputs: dict[str, list[ItemOutput]] = {}
    templates: dict[str, bool] = {}
    try:
        for use_template in (False, True):
            group = [t for t in tasks if (t.spec.chat_template and has_template) == use_template]
            if not group:
                continue
            if progress:
                n_items = sum(len(t.doc_ids) for t in group)
                mode = "with chat template" if use_template else "plain prompts"
                progress(f"scoring {model.describe()}: {len(group)} task(s), {n_items} items, {mode}")
            try:
                results = lm_eval.simple_evaluate(
                    model=lm,
                    tasks=[t.lm_eval_config for t in group],
                    samples={t.spec.id: list(t.doc_ids) for t in group},
                    log_samples=True,
                    apply_chat_template=use_template,
                    fewshot_as_multiturn=use_template,
                    bootstrap_iters=0,
                    use_cache=None,
                    cache_requests=False,
                    task_manager=bare_task_manager(),
                )
            except (RuntimeError, ValueError, KeyError, IndexError) as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise RuntimeFault(f"evaluating {model.describe()} failed ({reason})") from None
            if results is None:
                raise RuntimeFault(f"lm-eval returned no results for {model.describe()}")
            for task in group:
                outputs[task.spec.id] = _outputs(task, results["samples"][task.spec.id])
                templates[task.spec.id] = use_template
    finally:
        del lm
        gc.collect()
    return ModelScores(outputs, templates)


def pair_scores(tasks: Sequence[PreparedTask], base: ModelScores, ckpt: ModelScores) -> list[PairedTask]:
    """Join the two models' outputs item by item; refuse if they were not scored the same way."""
    paired = []
    for task in tasks:
        task_id = task.spec.id
        if base.chat_template[task_id] != ckpt.chat_template[task_id]:
            raise BadInputError(
                f"task {task_id}: the base has {'a' if base.chat_template[task_id] else 'no'} chat template and the "
                "checkpoint does not match, so their prompts differ: save the base's tokenizer with the checkpoint"
            )
        items = tuple(
            ItemPair(
                doc_id=b.doc_id, base_score=b.score, ckpt_score=c.score, base_answer=b.answer,
                ckpt_answer=c.answer, target=b.target, prompt=b.prompt, cluster=b.cluster,
            )
            for b, c in zip(base.outputs[task_id], ckpt.outputs[task_id], strict=True)
        )
        paired.append(PairedTask(task, items, base.chat_template[task_id]))
    return paired
