"""Drives lm-eval on the base and the checkpoint with identical settings: the model pair, lm-eval's per-sample log
read into per-item outputs, and the out-of-memory retry."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gate.distributed import share_from_main, world_size
from gate.errors import BadInputError, GateError, RunError
from gate.items import ItemOutput, ModelScores, ProgressHook
from gate.loading.backends import Endpoint
from gate.loading.loaders import ScoringSettings, load_model
from gate.loading.references import ResolvedModel
from gate.sandbox import code_execution_allowed
from gate.suites import PreparedTask, bare_task_manager

if TYPE_CHECKING:
    from gate.drafting import DraftBook

log = logging.getLogger("gate")
# Every model must give finite next-token log-probabilities on this text before it is scored: NaN or inf weights
# (a diverged fine-tune, a float16 overflow) show up here instead of as silently meaningless scores.
FINITE_PROBE = "The library opens at nine. Water boils at 100 degrees Celsius, and 3 + 4 = 7."
_LOGLIKELIHOOD_TYPES = ("multiple_choice", "loglikelihood", "loglikelihood_rolling")
_OOM_MESSAGES = ("out of memory", "can't allocate memory")




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


def _non_finite(model: ResolvedModel, what: str, dtype: str) -> RunError:
    """The RunError for a model whose numbers are NaN or inf: which model, where, and the fix."""
    fix = "check its weights for NaN or inf and re-export it from a healthy training step"
    if dtype != "float32":
        fix += ", or score in float32 (dtype: float32 in gate.yaml)"
    return RunError(f"{model.describe()} produces {what}, so it cannot be scored: {fix}")


def _logliks(sample: dict[str, Any]) -> list[float]:
    """The log-likelihoods lm-eval computed for a loglikelihood-type item, one per request."""
    return [float(r[0] if isinstance(r, list | tuple) else r) for r in sample["filtered_resps"]]


def _outputs(
    task: PreparedTask, doc_ids: Sequence[int], samples: list[dict[str, Any]], model: ResolvedModel, dtype: str
) -> list[ItemOutput]:
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
        where = f"on task {spec.id} item {doc_id}"
        if output_type in _LOGLIKELIHOOD_TYPES:
            # -inf is a continuation the model rules out; NaN or +inf is no log-likelihood at all.
            broken = [ll for ll in _logliks(sample) if math.isnan(ll) or ll == math.inf]
            if broken:
                raise _non_finite(model, f"a log-likelihood of {broken[0]} {where}", dtype)
        score = float(sample[spec.metric])
        if not math.isfinite(score):
            raise _non_finite(model, f"a {spec.metric} of {score} {where}", dtype)
        cluster = sample["doc"].get(spec.cluster_field) if spec.cluster_field else None
        generation = _generation_of(sample) if output_type == "generate_until" else None
        outputs.append(
            ItemOutput(
                doc_id=doc_id,
                score=score,
                answer=_answer_of(sample, output_type, spec.metric),
                target=_target_of(sample, output_type),
                prompt=str(sample["arguments"][0][0]),
                cluster=None if cluster is None else str(cluster),
                generation=generation,
            )
        )
    return outputs


def _generation_of(sample: dict[str, Any]) -> str | None:
    """A generation item's raw answer to its first request, before lm-eval's filters."""
    responses = sample.get("resps")
    first = responses[0] if isinstance(responses, list) and responses else None
    text = first[0] if isinstance(first, list) and first else first
    return text if isinstance(text, str) else None


def _tokenizer_identity(lm: Any) -> tuple[str, str]:
    tokenizer = lm.tokenizer
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    template = str(getattr(tokenizer, "chat_template", None))
    return hashlib.sha256(vocab.encode()).hexdigest(), hashlib.sha256(template.encode()).hexdigest()


class ModelPair:
    """The base and the checkpoint, each loaded once for the whole run.

    An adapter whose base is the run's base is applied to that one loaded model, and the base is scored with the
    adapter switched off: one load instead of two, and the exact base weights. Identical weights load once.
    Each model must give finite log-probabilities on FINITE_PROBE before anything is scored.
    """

    def __init__(
        self,
        base: ResolvedModel,
        checkpoint: ResolvedModel,
        settings: ScoringSettings,
        allow_differences: Collection[str] = (),
        endpoints: Mapping[str, Endpoint] | None = None,
        *,
        allow_code_execution: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        self.base, self.checkpoint, self.settings = base, checkpoint, settings
        self.allow_code_execution = allow_code_execution
        self.allow_differences = frozenset(allow_differences)
        self.endpoints = dict(endpoints or {})
        in_process = settings.backend == "hf" and not self.endpoints
        self.adapter_on_base = (
            in_process
            and checkpoint.kind == "adapter"
            and checkpoint.base is not None
            and checkpoint.base.fingerprint == base.fingerprint
        )
        same_weights = checkpoint.fingerprint == base.fingerprint and not self.endpoints
        self.drafts: DraftBook | None = None
        if in_process:
            from gate.drafting import DraftBook

            self.drafts = DraftBook()
        self._identities: dict[int, tuple[str, str]] = {}  # id(lm) -> its tokenizer's identity, read once
        self._ckpt_lm = load_model(checkpoint, settings, self.endpoints.get("checkpoint"), cache_dir)
        shared = self.adapter_on_base or same_weights
        self._base_lm = self._ckpt_lm if shared else load_model(base, settings, self.endpoints.get("base"), cache_dir)
        if self._base_lm is not self._ckpt_lm:
            self._check_tokenizers()
        self._check_finite()

    def backend(self, role: str) -> str:
        """How `role` is scored: `hf`, `vllm`, or `openai-compatible <model> at <url>`."""
        endpoint = self.endpoints.get(role)
        return f"openai-compatible {endpoint.describe()}" if endpoint else self.settings.backend

    def in_process(self, role: str) -> bool:
        """Whether `role` is a torch model in this process, whose logits the probe and drift can read."""
        return role not in self.endpoints and self.settings.backend == "hf"

    def _check_tokenizers(self) -> None:
        base_vocab, base_template = self._tokenizer_identity(self._base_lm)
        ckpt_vocab, ckpt_template = self._tokenizer_identity(self._ckpt_lm)
        if base_vocab != ckpt_vocab and "tokenizer" not in self.allow_differences:
            raise BadInputError(
                f"{self.checkpoint.reference} has a different tokenizer vocabulary from the base "
                f"{self.base.reference}, so their scores are not comparable: gate it against its own base (--base), "
                "or list `tokenizer` under allow_differences in gate.yaml if the change is on purpose"
            )
        if base_template != ckpt_template and "chat_template" not in self.allow_differences:
            raise BadInputError(
                f"{self.checkpoint.reference} has a different chat template from the base {self.base.reference}, "
                "so their prompts would differ: save the base's tokenizer files with the checkpoint, "
                "or list `chat_template` under allow_differences in gate.yaml if the change is on purpose"
            )

    def _check_finite(self) -> None:
        """RunError naming the model if base or checkpoint gives NaN log-probabilities on FINITE_PROBE."""
        import torch

        one_model = self._base_lm is self._ckpt_lm and not self.adapter_on_base
        for role in ("base",) if one_model else ("base", "checkpoint"):
            if not self.in_process(role):  # a served or vLLM model: its log-likelihoods are checked as they come
                continue
            if torch.isnan(torch.log_softmax(self._logits(role, FINITE_PROBE), dim=-1)).any():
                model = self._active(role)[1]
                raise _non_finite(model, "NaN or inf logits on a probe text", self.settings.dtype)

    def model_identity(self, role: str) -> dict[str, str]:
        """What decides `role`'s outputs besides the settings: its weights fingerprint, vocabulary and chat template."""
        lm, model, _ = self._active(role)
        vocab, template = self._tokenizer_identity(lm)
        return {
            "fingerprint": model.fingerprint,
            "vocabulary": vocab,
            "chat_template": template,
            "backend": self.backend(role),
        }

    def _tokenizer_identity(self, lm: Any) -> tuple[str, str]:
        """`lm`'s vocabulary and chat template digests, computed once per loaded model (a 150k-token vocabulary
        takes a third of a second to serialise, and a run asks up to six times)."""
        if id(lm) not in self._identities:
            self._identities[id(lm)] = _tokenizer_identity(lm)
        return self._identities[id(lm)]

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
        drafts = self.drafts if hasattr(lm, "draft_book") else None  # gate.scorer.GateHFLM
        if drafts is not None:
            lm.draft_book, lm.draft_role = drafts, role
        with context:
            scores = _score(
                lm, model, tasks, doc_ids, progress, self.settings, self.endpoints.get(role), self.allow_code_execution
            )
        if drafts is None or role != "base":
            return scores
        # The base's generated token ids go with its outputs into the result cache, to draft later checkpoints.
        for outputs in scores.outputs.values():
            outputs[:] = [
                replace(output, generation_ids=drafts.ids(output.prompt)) if output.generation is not None else output
                for output in outputs
            ]
        return scores

    def record_drafts(self, outputs: Sequence[ItemOutput]) -> None:
        """Offer the base's answers read from the result cache as drafts for the checkpoint's generation."""
        if self.drafts is not None:
            for output in outputs:
                if output.generation_ids:
                    self.drafts.record_ids(output.prompt, output.generation_ids)
                elif output.generation:
                    self.drafts.record_text(output.prompt, output.generation)

    def drafting_stats(self) -> dict[str, Any] | None:
        """Per role, generation requests decoded, tokens generated and accepted from drafts (gate.drafting)."""
        return self.drafts.summary() if self.drafts is not None else None

    def _logits(self, role: str, text: str) -> Any:
        """`role`'s logits (positions x vocabulary, float32) on a plain text."""
        import torch

        lm, _, context = self._active(role)
        ids = lm.tokenizer(text, return_tensors="pt").input_ids.to(lm.device)
        with context, torch.no_grad():
            return lm.model(ids).logits[0].float()

    def token_logprobs(self, role: str, text: str) -> np.ndarray:
        """Next-token log-probabilities (positions x vocabulary) of `role` on a plain text."""
        import torch

        return torch.log_softmax(self._logits(role, text)[:-1], dim=-1).cpu().numpy()


def _is_out_of_memory(exc: RuntimeError) -> bool:
    """torch's OutOfMemoryError, or a RuntimeError saying so (the CPU allocator's says "can't allocate memory")."""
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or any(message in str(exc) for message in _OOM_MESSAGES)


@contextlib.contextmanager
def _without_environment_report() -> Iterator[None]:
    """lm-eval's results without their environment report: simple_evaluate writes one on every call by running
    `pip list` and other commands in subprocesses (about 0.4 s of CPU a call, two calls a look). The gate records
    its own provenance and never reads that report."""
    import lm_eval.evaluator

    report = lm_eval.evaluator.add_env_info
    lm_eval.evaluator.add_env_info = lambda storage: None
    try:
        yield
    finally:
        lm_eval.evaluator.add_env_info = report


def _evaluate(lm: Any, model: ResolvedModel, **kwargs: Any) -> dict[str, Any] | None:
    """lm_eval.simple_evaluate on `lm`; out of memory, the same call again at half the batch size, down to 1.

    The smaller batch size stays for the rest of the run: it is what fits.
    """
    import lm_eval
    import torch

    while True:
        try:
            with _without_environment_report():
                return lm_eval.simple_evaluate(model=lm, **kwargs)  # type: ignore[no-any-return]
        except RuntimeError as exc:
            if not _is_out_of_memory(exc):
                raise
        size = int(lm.batch_size_per_gpu)  # HFLM's `batch_size` property, read by every request type
        if world_size() > 1:  # a retry on one process alone would not meet the others in lm-eval's gather
            raise RunError(
                f"{model.describe()} ran out of memory at batch size {size} in a data-parallel run: "
                "launch again with a smaller --batch-size"
            )
        if size <= 1:
            raise RunError(
                f"{model.describe()} ran out of memory even at batch size 1 (--batch-size cannot go lower): "
                "free memory on the machine, use a device with more memory, or set dtype: bfloat16 in gate.yaml"
            )
        lm.batch_size_per_gpu = size // 2
        log.warning(
            "%s ran out of memory at batch size %d: retrying at %d (kept for the rest of the run)",
            model.describe(),
            size,
            size // 2,
        )
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _score(
    lm: Any,
    model: ResolvedModel,
    tasks: Sequence[PreparedTask],
    doc_ids: Mapping[str, Sequence[int]],
    progress: ProgressHook | None,
    settings: ScoringSettings,
    endpoint: Endpoint | None = None,
    allow_code_execution: bool = False,
) -> ModelScores:
    has_template = getattr(lm.tokenizer, "chat_template", None) is not None
    chat_tasks = [t.spec.id for t in tasks if t.spec.chat_template and doc_ids[t.spec.id]]
    if chat_tasks and not has_template and endpoint is None:
        raise BadInputError(
            f"task {chat_tasks[0]} is scored with a chat template, but {model.describe()} has none: give one "
            "(chat_template in gate.yaml), or gate it on a suite of plain-prompt tasks"
        )
    dtype = settings.dtype
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
        from gate.scorer import GateHFLM

        if isinstance(lm, GateHFLM):  # served models (lm-eval's API clients) have no plain progress lines
            lm.say, lm.progress_name = progress, model.describe()
        allowed = code_execution_allowed() if allow_code_execution else contextlib.nullcontext()
        try:
            with allowed:
                results = _evaluate(
                    lm,
                    model,
                    tasks=[t.lm_eval_config for t in group],
                    # Sorted: lm-eval 0.4.13 logs the k-th selected doc (in dataset order) under the k-th doc id of
                    # the list as given, so an unsorted list mislabels items (lm-eval issue #4084). Outputs come back
                    # in the order asked for: _outputs picks them by doc id.
                    samples={t.spec.id: sorted(doc_ids[t.spec.id]) for t in group},
                    log_samples=True,
                    apply_chat_template=use_template,
                    fewshot_as_multiturn=use_template,
                    bootstrap_iters=0,
                    use_cache=None,
                    cache_requests=False,
                    task_manager=bare_task_manager(),
                    confirm_run_unsafe_code=allow_code_execution,
                )
        except GateError:
            raise
        except Exception as exc:  # a served model's client fails in its own ways (aiohttp, HTTP statuses)
            if endpoint is None and not isinstance(exc, RuntimeError | ValueError | KeyError | IndexError | TypeError):
                raise
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            loglikelihood = [t.spec.id for t in group if t.lm_eval_config.get("output_type") != "generate_until"]
            # lm-eval's client fails to read a completion without prompt log-probabilities with these two.
            if endpoint is not None and loglikelihood and isinstance(exc, TypeError | KeyError):
                raise RunError(
                    f"task {loglikelihood[0]} needs prompt log-probabilities, which {endpoint.describe()} did not "
                    f"return ({reason}): serve the model with vLLM (it echoes prompt log-probabilities), or gate it "
                    "on a suite of generation tasks only"
                ) from None
            raise RunError(f"evaluating {model.describe()} failed ({reason})") from None

        def collect(results: dict[str, Any] | None = results, group: list[PreparedTask] = group) -> dict[str, Any]:
            if results is None:
                raise RunError(f"lm-eval returned no results for {model.describe()}")
            return {
                task.spec.id: _outputs(task, doc_ids[task.spec.id], results["samples"][task.spec.id], model, dtype)
                for task in group
            }

        # Launched data-parallel, lm-eval gathered every process's items on rank 0: all ranks take its outputs.
        for task_id, task_outputs in share_from_main(collect).items():
            outputs[task_id] = task_outputs
            templates[task_id] = use_template
    return ModelScores(outputs, templates)
