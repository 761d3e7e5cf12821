"""Shared-prefix loglikelihood scoring for lm-eval: each context runs once, all its continuations score against it.

`GateHFLM` is lm-eval's `HFLM` with one method replaced, `_loglikelihood_tokens`: lm-eval still tokenises (context
and continuation encoded jointly, then split), prompts, generates and computes metrics. Requests are grouped by the
exact tokens the model conditions on. Each group becomes one packed row: the context, then every continuation but
its last token, with an attention mask under which each continuation sees the context and its own earlier tokens
and position ids that restart after the context. So the context's keys and values are computed once and shared by
every continuation in the same forward pass; the first token of every continuation is scored from the context's
last position, and logits are computed only at scored positions (`logits_to_keep`). Rows of similar length are
batched together, never more tokens per forward than lm-eval's own largest batch would hold.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm  # type: ignore[import-untyped]

from gate import drafting
from gate.drafting import DraftBook
from gate.progress import ItemProgress, live_bars

log = logging.getLogger("gate")

# ((context, continuation) or None for rolling windows, context tokens, continuation tokens), as lm-eval passes them.
Request = tuple[Any, list[int], list[int]]
Answer = tuple[float, bool]
# A batch's shortest row is at least this fraction of its longest, so little compute goes to padding.
FILL = 0.85
# Attention implementations that take a custom 4D mask the way this scorer builds it.
MASKABLE = ("sdpa", "eager")
# Log-probabilities are read this many bytes of logits at a time (42 rows of a 49k vocabulary in float32).
LOGPROB_CHUNK_BYTES = 8 * 2**20


@dataclass
class _Context:
    """One distinct conditioning prefix and the distinct continuations scored after it."""

    tokens: list[int]
    continuations: dict[tuple[int, ...], list[int]] = field(default_factory=dict)  # -> request indices

    @property
    def width(self) -> int:
        """Length of the packed row: the context, then each continuation without its last token."""
        return len(self.tokens) + sum(len(cont) - 1 for cont in self.continuations)


def group_by_context(requests: Sequence[Request], max_length: int) -> tuple[list[_Context], int]:
    """Group requests by the tokens HFLM conditions on, after its left truncation to `max_length` + 1 tokens.

    Returns the groups, widest packed row first, and how many requests were truncated.
    """
    contexts: dict[tuple[int, ...], _Context] = {}
    truncated = 0
    for index, (_, context, continuation) in enumerate(requests):
        if not context or not continuation or len(continuation) > max_length:
            raise ValueError(
                f"cannot score a continuation of {len(continuation)} tokens after a context of {len(context)} "
                f"with max_length {max_length}"
            )
        window = (context + continuation)[-(max_length + 1) :]
        truncated += len(window) < len(context) + len(continuation)
        prefix = tuple(window[: len(window) - len(continuation)])
        group = contexts.setdefault(prefix, _Context(list(prefix)))
        group.continuations.setdefault(tuple(continuation), []).append(index)
    return sorted(contexts.values(), key=lambda c: -c.width), truncated


def length_buckets(lengths: Sequence[int], budget: int) -> Iterator[slice]:
    """Consecutive runs of `lengths` (sorted longest first) whose padded size fits `budget` tokens.

    Each run's shortest length is at least FILL of its longest; a run holds at least one item whatever its size.
    """
    start = 0
    while start < len(lengths):
        end = start + 1
        while (
            end < len(lengths)
            and (end + 1 - start) * lengths[start] <= budget
            and lengths[end] >= FILL * lengths[start]
        ):
            end += 1
        yield slice(start, end)
        start = end


@dataclass
class _Packed:
    """A batch of packed rows as model inputs, and where each continuation's scored tokens sit among the logits."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    segments: torch.Tensor  # 0 context, i > 0 the i-th continuation, -1 padding
    keep: torch.Tensor  # positions whose logits are computed
    spans: list[tuple[list[int], list[int]]]  # per continuation: (logit rows, target tokens)


def _pack(batch: Sequence[_Context]) -> _Packed:
    width = batch[0].width
    ids, positions, segments, keep, spans = [], [], [], [], []
    kept = 0  # logits come back flattened row-major over `keep`: this counts them
    for context in batch:
        size = len(context.tokens)
        row, pos, seg = list(context.tokens), list(range(size)), [0] * size
        first = kept  # the context's last position scores every continuation's first token
        kept += 1
        for number, cont in enumerate(context.continuations, start=1):
            tail = len(cont) - 1
            spans.append(([first, *range(kept, kept + tail)], list(cont)))
            row += cont[:-1]
            pos += range(size, size + tail)
            seg += [number] * tail
            kept += tail
        pad = width - len(row)
        ids.append(row + [0] * pad)
        positions.append(pos + [0] * pad)
        segments.append(seg + [-1] * pad)
        keep.append([False] * (size - 1) + [True] * (len(row) - size + 1) + [False] * pad)
    return _Packed(
        torch.tensor(ids), torch.tensor(positions), torch.tensor(segments), torch.tensor(keep), spans
    )


@register_model("gate-hf")
class GateHFLM(HFLM):  # type: ignore[misc]  # lm-eval ships no type information
    """lm-eval's HFLM with shared-prefix multiple-choice scoring; results match HFLM's to float rounding.

    Under `accelerate launch` it splits requests across the processes on CPUs too: HFLM only does with GPUs.
    In a log (see gate.progress) its bars and lm-eval's are off, and `say`, when set, gets a plain progress line
    per call at most every 30 s.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None and self.world_size == 1 and accelerator.num_processes > 1:
            self._rank, self._world_size = accelerator.process_index, accelerator.num_processes
        self.say: Callable[[str], None] | None = None
        self.progress_name = "model"  # the runner names the model it scores
        self._progress: ItemProgress | None = None
        self._per_request = 0.0
        # Set by gate.runner.ModelPair: the base's answers, and whether this model records them or verifies them.
        self.draft_book: DraftBook | None = None
        self.draft_role = "base"

    @contextlib.contextmanager
    def forward_mode(self) -> Iterator[None]:
        """How the gate's own forward passes run: no autograd, in the model's mixed precision when it has one."""
        with (
            torch.inference_mode(),
            torch.autocast(
                device_type=self.device.type,
                dtype=self.mixed_precision_dtype,
                enabled=self.mixed_precision_dtype is not None,
            ),
        ):
            yield

    @contextlib.contextmanager
    def _counting(self, requests: Sequence[Any]) -> Iterator[bool]:
        """Count the requests' items for plain progress lines; yields whether lm-eval's own bars stay off."""
        if live_bars() or self.say is None or self.rank != 0 or not requests:
            yield not live_bars()
            return
        items = len({(request.task_name, request.doc_id) for request in requests})
        tasks = ", ".join(sorted({str(request.task_name) for request in requests}))
        self._progress = ItemProgress(f"{self.progress_name} · {tasks}", items, self.say)
        self._per_request = items / len(requests)
        try:
            yield True
        finally:
            self._progress = None

    def _advance(self, requests: int) -> None:
        if self._progress is not None:
            self._progress.advance(requests * self._per_request)

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[Answer]:
        """HFLM's, counted for progress lines; no bars in a log."""
        with self._counting(requests) as quiet:
            answers: list[Answer] = super().loglikelihood(requests, disable_tqdm=disable_tqdm or quiet)
            return answers


    def _model_generate(self, context: torch.Tensor, max_length: int, stop: list[str], **kwargs: Any) -> Any:
        out = super()._model_generate(context, max_length, stop, **kwargs)
        self._advance(context.shape[0])
        return out

    def _model_call(self, inps: torch.Tensor, attn_mask: Any = None, labels: Any = None) -> Any:
        out = super()._model_call(inps, attn_mask=attn_mask, labels=labels)
        self._advance(inps.shape[0])
        return out

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The chat prompt; a system message a template refuses (Gemma's raises on one) opens the first user turn.

        lm-eval would drop it (the task's description with it) after the template raised.
        """
        if chat_history and chat_history[0]["role"] == "system" and not self._template_takes_system():
            system, rest = chat_history[0]["content"], list(chat_history[1:])
            if rest and rest[0]["role"] == "user":
                rest[0] = {**rest[0], "content": f"{system}\n\n{rest[0]['content']}"}
            else:
                rest.insert(0, {"role": "user", "content": system})
            chat_history = rest
        prompt: str = super().apply_chat_template(chat_history, add_generation_prompt)
        return prompt

    def _template_takes_system(self) -> bool:
        """Whether the chat template renders a system message (checked once, and said when it does not)."""
        import jinja2

        if not hasattr(self, "_takes_system"):
            probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
            try:
                self.tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
                self._takes_system = True
            except jinja2.exceptions.TemplateError:
                self._takes_system = False
                log.warning(
                    "the chat template refuses a system message: the gate puts the task's system text at the start "
                    "of the first user turn instead"
                )
        return self._takes_system

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy requests verify the base's answers first when a DraftBook is set (gate.drafting); counted for
        progress lines; no bars in a log."""
        with self._counting(requests) as quiet:
            if self.draft_book is None:
                return self.plain_generate_until(requests, disable_tqdm or quiet)
            return drafting.generate_until(self, requests, self.draft_book, self.draft_role, disable_tqdm or quiet)

    def plain_generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """lm-eval's own HFLM.generate_until."""
        answers: list[str] = super().generate_until(requests, disable_tqdm=disable_tqdm)
        return answers

    def _loglikelihood_tokens(
        self,
        requests: list[Request],
        disable_tqdm: bool = False,
        override_bs: int | None = None,
    ) -> list[Answer]:
        """Score each (context, continuation) pair: log-probability of the continuation and whether it is greedy."""
        if not self._can_pack(requests):
            answers: list[Answer] = super()._loglikelihood_tokens(
                requests, disable_tqdm=disable_tqdm, override_bs=override_bs
            )
            return answers
        if self.world_size > 1:
            log.info("process %d of %d scores %d log-likelihood requests", self.rank, self.world_size, len(requests))
        contexts, truncated = group_by_context(requests, self.max_length)
        if truncated:
            log.warning("%d request(s) exceed max_length %d: truncated from the left", truncated, self.max_length)
        # batch_size="auto" would probe memory with HFLM's request shapes: take max_batch_size instead.
        rows = override_bs or (self.batch_size if isinstance(self.batch_size, int) else self.max_batch_size)
        # HFLM's largest batch: `rows` of its longest input (context + continuation, less the last token).
        budget = rows * max(
            (min(len(ctx) + len(cont), self.max_length + 1) - 1 for _, ctx, cont in requests), default=1
        )
        results: dict[int, Answer] = {}
        with tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="Scoring (shared prefix)") as bar:
            for batch in length_buckets([c.width for c in contexts], budget):
                for indices, answer in self._score(contexts[batch]):
                    for index in indices:
                        results[index] = answer
                        if requests[index][0] is not None:
                            self.cache_hook.add_partial("loglikelihood", requests[index][0], answer)
                    bar.update(len(indices))
                    self._advance(len(indices))
        return [results[index] for index in range(len(requests))]

    def _can_pack(self, requests: Sequence[Request]) -> bool:
        """Whether packed rows compute what HFLM's one-sequence-per-request batches do (up to float rounding)."""
        peft_config = getattr(self.model, "active_peft_config", None)
        config = self.model.config
        window = getattr(config.get_text_config(), "sliding_window", None)
        return (
            self.backend == "causal"
            and not getattr(peft_config, "is_prompt_learning", False)  # virtual tokens change the prefix
            and config._attn_implementation in MASKABLE
            and (window is None or all(len(ctx) + len(cont) <= window for _, ctx, cont in requests))
        )

    def _score(self, batch: Sequence[_Context]) -> Iterator[tuple[list[int], Answer]]:
        """One forward pass over a batch of packed rows; yields each continuation's request indices and answer."""
        packed = _pack(batch)
        segments = packed.segments.to(self.device)
        order = torch.arange(segments.shape[1], device=self.device)
        # A token sees earlier tokens of the context and of its own continuation (padding sees context and padding).
        visible = (order[None, :, None] >= order[None, None, :]) & (
            (segments[:, None, :] == 0) | (segments[:, None, :] == segments[:, :, None])
        )
        # An additive mask: eager attention adds it to its scores, and SDPA's CPU kernel runs faster on it than on a
        # boolean one.
        mask = torch.zeros(visible.shape, device=self.device).masked_fill(~visible, torch.finfo(torch.float32).min)
        with self.forward_mode():
            logits = self.model(
                input_ids=packed.input_ids.to(self.device),
                attention_mask=mask[:, None],
                position_ids=packed.position_ids.to(self.device),
                logits_to_keep=packed.keep.to(self.device),
                use_cache=False,
            ).logits
        scored = torch.tensor([row for rows, _ in packed.spans for row in rows], device=self.device)
        targets = torch.tensor([t for _, tokens in packed.spans for t in tokens], device=self.device)
        picked, hits = self._read_logprobs(logits, scored, targets)
        sizes = [len(tokens) for _, tokens in packed.spans]
        requests = (indices for context in batch for indices in context.continuations.values())
        per_request = zip(requests, torch.split(picked, sizes), torch.split(hits, sizes), strict=True)
        for indices, scores, matches in per_request:
            yield indices, (float(scores.sum()), bool(matches.all()))

    def _read_logprobs(
        self, logits: torch.Tensor, scored: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each target's log-probability in its scored row of `logits`, and whether it is the row's argmax.

        The log-softmax runs over a few rows at a time: a table the size of all the batch's logits would be a fresh
        allocation per batch, and filling its pages cost three times the log-softmax itself on a CPU.
        """
        step = max(1, LOGPROB_CHUNK_BYTES // (logits.shape[-1] * logits.element_size()))
        picked = torch.empty(targets.shape, dtype=self.softmax_dtype or logits.dtype, device=self.device)
        hits = torch.empty(targets.shape, dtype=torch.bool, device=self.device)
        for start in range(0, logits.shape[0], step):
            inside = (scored >= start) & (scored < start + step)
            rows, columns = scored[inside] - start, targets[inside]
            # Outside inference_mode: _greedy writes to it.
            logprobs = F.log_softmax(logits[start : start + step], dim=-1, dtype=self.softmax_dtype)
            picked[inside], hits[inside] = logprobs[rows, columns], _greedy(logprobs, rows, columns)
        return picked, hits


def _greedy(logprobs: torch.Tensor, scored: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Whether each target is the argmax (the first maximal index, as HFLM reads it) of its scored row of logprobs.

    Row maxima are a vectorised reduction, several times faster than argmax over the vocabulary on a CPU. A target
    at its row's maximum is the argmax unless another entry ties with it: another target of the same row at the
    maximum, or an entry the maxima taken again with those targets masked find. Argmax settles the ties, and the
    rows holding a NaN (their maximum). `logprobs` is restored before it returns.
    """
    best = logprobs.amax(dim=-1)
    hits = logprobs[scored, targets] == best[scored]
    rows, columns = torch.unique(torch.stack([scored[hits], targets[hits]]), dim=1)
    shared = torch.bincount(rows, minlength=best.numel()) > 1
    logprobs[rows, columns] = float("-inf")
    tied = (hits & (shared | (logprobs.amax(dim=-1) == best))[scored]) | best.isnan()[scored]
    logprobs[rows, columns] = best[rows]
    hits[tied] = logprobs[scored[tied]].argmax(dim=-1) == targets[tied]
    return hits
