"""Greedy generation drafted by the base's answers: the checkpoint verifies the base's tokens instead of decoding them.

The gate decodes every prompt with two models, the base first. For a greedy `generate_until` request the checkpoint
runs once over the prompt followed by the base's answer tokens (the draft); it accepts the longest prefix of the draft
that equals its own argmax at every position, takes its own argmax where they first differ, and goes on with ordinary
greedy decoding on the key-value cache of the accepted prefix. Every token is the checkpoint's own argmax: the result
is its greedy output (up to float rounding where two logits tie), and an unchanged answer of N tokens costs one forward
pass instead of N (speculative decoding with a free, aligned draft).

Stop strings, `max_gen_toks`, the end-of-sequence token and the cut of the answer follow lm-eval's
HFLM.generate_until: requests are batched the same way (grouped by generation settings, longest prompt first), a row
ends at an end-of-sequence token, at `max_gen_toks` or once a stop string appears in its decoded text, and the answer
is the decoded text cut at the first stop string. Sampling requests and models whose generation settings change greedy
decoding (a repetition penalty, forced tokens, ...) keep lm-eval's own path.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from lm_eval.models.utils import Collator, handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from tqdm import tqdm  # type: ignore[import-untyped]
from transformers import DynamicCache, GenerationConfig
from transformers.modeling_outputs import CausalLMOutputWithPast

log = logging.getLogger("gate")

# Generation-config fields that change which token greedy decoding picks: a model that sets any of them to other than
# its default keeps lm-eval's path (model.generate applies them as logits processors).
_PROCESSOR_FIELDS = (
    "repetition_penalty",
    "encoder_repetition_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "min_length",
    "min_new_tokens",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "suppress_tokens",
    "begin_suppress_tokens",
    "sequence_bias",
    "exponential_decay_length_penalty",
    "guidance_scale",
    "watermarking_config",
    "stop_strings",
    "num_beams",
    "prompt_lookup_num_tokens",
    "assistant_model",
)
# The forward pass's keyword for the key-value cache: transformers 5 renamed past_key_values to cache.
_CACHE_KWARG = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"
# Draft tokens verified per forward pass: a short first window, so that a draft rejected at once costs little more
# than the prompt's pass, doubled after each window accepted whole, up to a cap.
_FIRST_WINDOW = 8
_MAX_WINDOW = 128
# Generation kwargs a greedy request may carry (after lm-eval's normalisation) and still be drafted.
_GREEDY_KWARGS = frozenset({"do_sample", "temperature", "until", "max_gen_toks"})


@dataclass
class DraftStats:
    """What drafting saved for one role: per drafted request the draft's length and the tokens the model accepted."""

    requests: int = 0
    drafted: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    generated_tokens: int = 0
    forward_passes: int = 0

    def summary(self) -> dict[str, Any]:
        """Totals and the distribution of tokens accepted per drafted request."""
        accepted = sorted(self.accepted)
        return {
            "requests": self.requests,
            "drafted_requests": len(accepted),
            "generated_tokens": self.generated_tokens,
            "accepted_tokens": sum(accepted),
            "forward_passes": self.forward_passes,
            "accepted_per_item": {
                "min": accepted[0],
                "median": statistics.median(accepted),
                "mean": round(statistics.fmean(accepted), 2),
                "max": accepted[-1],
            }
            if accepted
            else None,
        }


class DraftBook:
    """The base's greedy answers by prompt, for the checkpoint to verify: token ids from this run or the result cache,
    else the answer text (re-tokenised; the checkpoint verifies every token, so a draft only changes the speed)."""

    def __init__(self) -> None:
        self._ids: dict[str, list[int]] = {}
        self._texts: dict[str, str] = {}
        self.stats = {"base": DraftStats(), "checkpoint": DraftStats()}

    def record_ids(self, context: str, ids: Sequence[int]) -> None:
        """The base's generated token ids for the prompt `context`."""
        self._ids[context] = list(ids)

    def record_text(self, context: str, text: str) -> None:
        """The base's answer text for `context` (from the result cache), unless its token ids are known."""
        if context not in self._ids:
            self._texts[context] = text

    def ids(self, context: str) -> list[int] | None:
        """The base's generated token ids for `context`, if this run decoded it."""
        return self._ids.get(context)

    def draft(self, context: str, tokenizer: Any) -> list[int]:
        """The draft for `context`: the base's token ids, its re-tokenised text, or nothing."""
        if context in self._ids:
            return self._ids[context]
        text = self._texts.get(context)
        return [] if not text else list(tokenizer.encode(text, add_special_tokens=False))

    def summary(self) -> dict[str, Any]:
        """Per role, the drafting totals (see DraftStats.summary)."""
        return {role: stats.summary() for role, stats in self.stats.items() if stats.requests}


def drafting_blocker(lm: Any) -> str | None:
    """Why `lm` (an HFLM) cannot draft its greedy generation, or None when it can."""
    if lm.backend != "causal":
        return "not a causal LM"
    if lm.think_end_token is not None:
        return "a think_end_token is set"
    if getattr(getattr(lm.model, "active_peft_config", None), "is_prompt_learning", False):
        return "a prompt-learning adapter"
    text_config = lm.model.config.get_text_config()
    if getattr(text_config, "sliding_window", None) is not None and getattr(text_config, "use_sliding_window", True):
        return "sliding-window attention"
    tokenizer = lm.tokenizer
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id not in tokenizer.all_special_ids:
        return "the padding token is not a special token"
    config, default = lm.model.generation_config, GenerationConfig()  # type: ignore[no-untyped-call]
    for name in _PROCESSOR_FIELDS:
        value = getattr(config, name, None)
        if value is not None and value != getattr(default, name, None):
            return f"its generation config sets {name}"
    return None


def is_greedy(gen_kwargs: dict[str, Any], default_max_gen_toks: int) -> bool:
    """Whether a request's generation kwargs ask for plain greedy decoding (what drafting reproduces)."""
    kwargs = normalize_gen_kwargs(gen_kwargs, default_max_gen_toks)
    return not kwargs.get("do_sample") and set(kwargs) <= _GREEDY_KWARGS


def _eos_ids(lm: Any) -> set[int]:
    """The tokens that end a row in model.generate: the generation config's end-of-sequence ids."""
    eos = lm.model.generation_config.eos_token_id
    if eos is None:
        return set()
    return {int(eos)} if isinstance(eos, int) else {int(token) for token in eos}


@dataclass
class _Row:
    """One request being decoded: its prompt tokens, the draft, and the tokens generated so far."""

    context: list[int]
    draft: list[int]
    tokens: list[int] = field(default_factory=list)
    accepted: int = 0
    done: bool = False
    window: int = 0


class DraftedGenerator:
    """lm-eval's HFLM.generate_until for greedy requests, verifying each request's draft before decoding on."""

    def __init__(self, lm: Any, book: DraftBook, role: str) -> None:
        self.lm, self.book, self.role = lm, book, role
        self.eos = _eos_ids(lm)
        self.stats = book.stats[role]

    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[str]:
        """Each greedy request's answer, as HFLM.generate_until gives it."""
        lm = self.lm
        # batch_size "auto" would probe memory with HFLM's own shapes: take max_batch_size instead.
        batch_size = lm.batch_size if isinstance(lm.batch_size, int) else int(lm.max_batch_size)
        collator = Collator(
            [request.args for request in requests],
            sort_fn=lambda req: (-len(lm.tok_encode(req[0])), req[0]),
            group_by="gen_kwargs",
            group_fn=lambda req: req[1],
        )
        eos_text = lm.tok_decode(lm.eot_token_id, skip_special_tokens=False)
        answers = []
        start = (len(self.stats.accepted), self.stats.generated_tokens)
        with tqdm(total=len(requests), disable=disable_tqdm or lm.rank != 0, desc="Generating (drafted)") as bar:
            for chunk in collator.get_batched(n=batch_size):
                contexts, all_kwargs = zip(*chunk, strict=True)
                kwargs = normalize_gen_kwargs(all_kwargs[0], lm.max_gen_toks)
                until = handle_stop_sequences(kwargs.pop("until", None), eos=eos_text)
                max_gen_toks = int(kwargs.pop("max_gen_toks"))
                for context, text in zip(
                    contexts, self._generate_batch(list(contexts), until, max_gen_toks), strict=True
                ):
                    answers.append(text)
                    lm.cache_hook.add_partial("generate_until", (context, all_kwargs[0]), text)
                    bar.update(1)
        self._log(len(requests), start)
        return list(collator.get_original(answers))

    def _log(self, requests: int, start: tuple[int, int]) -> None:
        accepted = self.stats.accepted[start[0] :]
        generated = self.stats.generated_tokens - start[1]
        if self.role == "base":
            log.info("base: %d generation request(s), %d tokens, recorded as drafts", requests, generated)
        elif accepted:
            log.info(
                "checkpoint: %d of %d generation request(s) drafted by the base's answers; tokens accepted per item "
                "median %s, mean %.1f (%d of %d generated tokens)",
                len(accepted),
                requests,
                statistics.median(accepted),
                statistics.fmean(accepted),
                sum(accepted),
                generated,
            )

    def _generate_batch(self, contexts: list[str], until: list[str], max_gen_toks: int) -> list[str]:
        """One batch of HFLM.generate_until: the answers to `contexts`, drafts verified first."""
        lm = self.lm
        # Encoded as HFLM encodes the batch (its padding and left truncation), then unpadded per row.
        encoded, mask = lm.tok_batch_encode(
            contexts, left_truncate_len=lm.max_length - max_gen_toks, truncation=lm.truncation
        )
        rows = []
        for context, ids, row_mask in zip(contexts, encoded.tolist(), mask.tolist(), strict=True):
            tokens = [token for token, keep in zip(ids, row_mask, strict=True) if keep]
            draft = self.book.draft(context, lm.tokenizer)[:max_gen_toks] if self.role == "checkpoint" else []
            rows.append(_Row(tokens, draft))
        with lm.forward_mode():
            self._decode(rows, until, max_gen_toks)
        self.stats.requests += len(rows)
        for context, row in zip(contexts, rows, strict=True):
            self.stats.generated_tokens += len(row.tokens)
            if self.role == "base":
                self.book.record_ids(context, row.tokens)
            elif row.draft:
                self.stats.drafted.append(len(row.draft))
                self.stats.accepted.append(row.accepted)
        return [postprocess_generated_text(lm.tok_decode(row.tokens), until, None) for row in rows]

    def _finish(self, row: _Row, until: Sequence[str], max_gen_toks: int) -> None:
        """Cut `row.tokens` at its first end-of-sequence token and `max_gen_toks`, and mark the row done if it is."""
        for index, token in enumerate(row.tokens):
            if token in self.eos:
                row.tokens, row.done = row.tokens[: index + 1], True
                return
        if len(row.tokens) >= max_gen_toks:
            row.tokens, row.done = row.tokens[:max_gen_toks], True
            return
        text = self.lm.tok_decode(row.tokens)
        row.done = any(stop and stop in text for stop in until)

    def _decode(self, rows: list[_Row], until: Sequence[str], max_gen_toks: int) -> None:
        """Fill each row's tokens with the model's greedy continuation, one forward pass per step.

        A step feeds each unfinished row its newest token (the whole prompt in the first step) followed by the next
        window of its draft while its answer still equals the draft, left-padded; the model's argmax after each fed
        token accepts the draft's agreeing prefix and gives one token of its own. A rejected draft tail is masked
        out of the key-value cache, and finished rows leave the batch.
        """
        lm, device = self.lm, self.lm.device
        pad = lm.tokenizer.pad_token_id
        for row in rows:
            row.window = _FIRST_WINDOW
        fed = [row.context for row in rows]
        active = list(range(len(rows)))
        cache = DynamicCache()
        mask = torch.zeros((len(rows), 0), dtype=torch.long, device=device)
        first = True
        while active:
            windows = [self._window(rows[i]) for i in active]
            segments = [fed[i] + window for i, window in zip(active, windows, strict=True)]
            width = max(len(segment) for segment in segments)
            ids = [[pad] * (width - len(segment)) + segment for segment in segments]
            step = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in segments], device=device)
            mask = torch.cat([mask, step], dim=1)
            if first:  # as model.generate numbers left-padded prompts
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
            else:
                starts = torch.tensor(
                    [len(rows[i].context) + len(rows[i].tokens) - 1 for i in active], device=device
                )
                positions = (starts[:, None] + step.cumsum(-1) - 1).clamp(min=0)
            kept = 1 + max(len(window) for window in windows)
            logits = lm.model(
                input_ids=torch.tensor(ids, device=device),
                attention_mask=mask,
                position_ids=positions,
                **{_CACHE_KWARG: cache},
                use_cache=True,
                logits_to_keep=kept,
            ).logits
            self.stats.forward_passes += 1
            first = False
            rejected = []
            for i, window, predicted in zip(active, windows, logits.argmax(dim=-1).tolist(), strict=True):
                row = rows[i]
                own = predicted[kept - 1 - len(window) :]  # the argmax after the newest token and each draft token
                agreed = next((j for j, token in enumerate(window) if token != own[j]), len(window))
                row.tokens += [*window[:agreed], own[agreed]]
                if agreed == len(window) == row.window:
                    row.window = min(2 * row.window, _MAX_WINDOW)
                rejected.append(len(window) - agreed)
                self._finish(row, until, max_gen_toks)
                fed[i] = [row.tokens[-1]]
            # The rejected draft tokens sit at the end of their row's segment: masked out, and the cache cut after
            # the last column any unfinished row still uses.
            total = mask.shape[1]
            for position, count in enumerate(rejected):
                if count:
                    mask[position, total - count :] = 0
            still = [position for position, i in enumerate(active) if not rows[i].done]
            if not still:
                break
            keep = total - min(rejected[position] for position in still)
            if len(still) < len(active):
                selected = torch.tensor(still, device=device)
                cache.batch_select_indices(selected)
                mask = mask[selected]
            if keep < total:
                cache.crop(keep - total)
                mask = mask[:, :keep]
            active = [active[position] for position in still]
        for row in rows:
            row.accepted = next(
                (j for j, token in enumerate(row.tokens[: len(row.draft)]) if token != row.draft[j]),
                min(len(row.tokens), len(row.draft)),
            )

    @staticmethod
    def _window(row: _Row) -> list[int]:
        """The draft tokens to verify in the next step: its next window while the answer so far equals the draft."""
        if row.tokens != row.draft[: len(row.tokens)]:
            return []
        return row.draft[len(row.tokens) : len(row.tokens) + row.window]


def generate_until(
    lm: Any, requests: Sequence[Any], book: DraftBook, role: str, disable_tqdm: bool = False
) -> list[str]:
    """HFLM.generate_until with greedy requests drafted (role "checkpoint") or recorded as drafts (role "base").

    Sampling requests, and every request of a model that cannot draft (see drafting_blocker), take lm-eval's path.
    """
    blocker = drafting_blocker(lm)
    greedy = [] if blocker else [i for i, r in enumerate(requests) if is_greedy(r.args[1], lm.max_gen_toks)]
    if blocker:
        log.info("%s: greedy generation is not drafted (%s): lm-eval's generate_until", role, blocker)
    answers: list[str | None] = [None] * len(requests)
    if greedy:
        drafted = DraftedGenerator(lm, book, role).generate_until([requests[i] for i in greedy], disable_tqdm)
        for index, answer in zip(greedy, drafted, strict=True):
            answers[index] = answer
    rest = [i for i in range(len(requests)) if answers[i] is None]
    if rest:
        plain = lm.plain_generate_until([requests[i] for i in rest], disable_tqdm)
        for index, answer in zip(rest, plain, strict=True):
            answers[index] = answer
    return [answer for answer in answers if answer is not None]
