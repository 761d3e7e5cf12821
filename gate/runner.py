"""Drives lm-eval on the base and the checkpoint with identical settings; returns per-item paired results."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gate.errors import BadInputError, RunError
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


def _outputs(task: PreparedTask, doc_ids: Sequence[int], samples: list[dict[str, Any]]) -> list[ItemOutput]:
    spec = task.spec
    output_type = str(task.lm_eval_config.get("output_type", "generate_until"))
    by_doc: dict[int, dict[str, Any]] = {}
    for sample in samples:
        if sample["filter"] == spec.filter:
            by_doc[int(sample["doc_id"])] = sample
    missing = [d for d in doc_ids if d not in by_doc]
    if missing:
        raise RunError(f"lm-eval returned no '{spec.filter}' result for task {spec.id} item {missing[0]}")
    outputs = []
    for doc_id in doc_ids:
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
        device=settings.device,
        dtype=settings.dtype,
        batch_size=settings.batch_size,
        trust_remote_code=settings.trust_remote_code,
    )
    try:
        return HFLM(**args)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunError(f"{model.describe()} failed to load ({reason}): check that the files are complete") from None


def _tokenizer_identity(lm: Any) -> tuple[str, str]:
    tokenizer = lm.tokenizer
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    template = str(getattr(tokenizer, "chat_template", None))
    return hashlib.sha256(vocab.encode()).hexdigest(), hashlib.sha256(template.encode()).hexdigest()


class ModelPair:
    """The base and the checkpoint, each loaded once for the whole run.

    An adapter whose base is the run's base is applied to that one loaded model, and the base is scored with the
    adapter switched off: one load instead of two, and the exact base weights. Identical weights load once.
    """

    def __init__(self, base: ResolvedModel, checkpoint: ResolvedModel, settings: ScoringSettings) -> None:
        self.base, self.checkpoint, self.settings = base, checkpoint, settings
        self.adapter_on_base = (
            checkpoint.kind == "adapter"
            and checkpoint.base is not None
            and checkpoint.base.fingerprint == base.fingerprint
        )
        same_weights = checkpoint.fingerprint == base.fingerprint
        self._ckpt_lm = _load(checkpoint, settings)
        self._base_lm = self._ckpt_lm if self.adapter_on_base or same_weights else _load(base, settings)
        if self._base_lm is not self._ckpt_lm:
            self._check_tokenizers()

    def _check_tokenizers(self) -> None:
        base_vocab, base_template = _tokenizer_identity(self._base_lm)
        ckpt_vocab, ckpt_template = _tokenizer_identity(self._ckpt_lm)
        if base_vocab != ckpt_vocab:
            raise BadInputError(
                f"{self.checkpoint.reference} has a different tokenizer vocabulary from the base "
                f"{self.base.reference}, so their scores are not comparable: gate it against its own base (--base)"
            )
        if base_template != ckpt_template:
            raise BadInputError(
                f"{self.checkpoint.reference} has a different chat template from the base {self.base.reference}, "
                "so their prompts would differ: save the base's tokenizer files with the checkpoint"
            )

    def close(self) -> None:
        """Release both models."""
        del self._base_lm, self._ckpt_lm
        gc.collect()

    def __enter__(self) -> ModelPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _active(self, role: str) -> tuple[Any, ResolvedModel, contextlib.AbstractContextManager[Any]]:
        if role == "checkpoint":
            return self._ckpt_lm, self.checkpoint, contextlib.nullcontext()
        if self.adapter_on_base:
            return self._base_lm, self.base, self._base_lm.model.disable_adapter()
        return self._base_lm, self.base, contextlib.nullcontext()

    def score(
        self,
        role: str,
        tasks: Sequence[PreparedTask],
        doc_ids: Mapping[str, Sequence[int]],
        progress: ProgressHook | None = None,
    ) -> ModelScores:
        """Score `role` ("base" or "checkpoint") on the given doc ids of each task, in that order."""
        lm, model, context = self._active(role)
        with context:
            return _score(lm, model, tasks, doc_ids, progress)

    def token_logprobs(self, role: str, text: str) -> np.ndarray:
        """Next-token log-probabilities (positions x vocabulary) of `role` on a plain text."""
        import torch

        lm, _, context = self._active(role)
        ids = lm.tokenizer(text, return_tensors="pt").input_ids.to(lm.device)
        with context, torch.no_grad():
            logits = lm.model(ids).logits[0, :-1].float()
        return torch.log_softmax(logits, dim=-1).cpu().numpy()


def _score(
    lm: Any,
    model: ResolvedModel,
    tasks: Sequence[PreparedTask],
    doc_ids: Mapping[str, Sequence[int]],
    progress: ProgressHook | None,
) -> ModelScores:
    import lm_eval

    has_template = getattr(lm.tokenizer, "chat_template", None) is not None
    outputs: dict[str, list[ItemOutput]] = {}
    templates: dict[str, bool] = {}
    for use_template in (False, True):
        group = [t for t in tasks if (t.spec.chat_template and has_template) == use_template and doc_ids[t.spec.id]]
        if not group:
            continue
        if progress:
            n_items = sum(len(doc_ids[t.spec.id]) for t in group)
            mode = "with chat template" if use_template else "plain prompts"
            progress(f"scoring {model.describe()}: {len(group)} task(s), {n_items} items, {mode}")
        try:
            results = lm_eval.simple_evaluate(
                model=lm,
                tasks=[t.lm_eval_config for t in group],
                samples={t.spec.id: list(doc_ids[t.spec.id]) for t in group},
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
            raise RunError(f"evaluating {model.describe()} failed ({reason})") from None
        if results is None:
            raise RunError(f"lm-eval returned no results for {model.describe()}")
        for task in group:
            outputs[task.spec.id] = _outputs(task, doc_ids[task.spec.id], results["samples"][task.spec.id])
            templates[task.spec.id] = use_template
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
                doc_id=b.doc_id,
                base_score=b.score,
                ckpt_score=c.score,
                base_answer=b.answer,
                ckpt_answer=c.answer,
                target=b.target,
                prompt=b.prompt,
                cluster=b.cluster,
            )
            for b, c in zip(base.outputs[task_id], ckpt.outputs[task_id], strict=True)
        )
        paired.append(PairedTask(task, items, base.chat_template[task_id]))
    return paired
