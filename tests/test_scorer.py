"""The shared-prefix scorer against lm-eval's HFLM: same log-likelihoods and greedy flags, less compute."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import SMOLLM2_GGUF, TEST_DATA, smollm2_folder
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

# A request's log-likelihood may differ from HFLM's by TOLERANCE plus RELATIVE of its size: the packed rows change
from gate.loading.gguf import dequantised_folder
from gate.loading.loaders import load_scorer_model
from gate.loading.references import resolve_model
from gate.scorer import GateHFLM, _greedy, group_by_context, length_buckets

# the attention's float32 rounding by ~1e-5 a token, which adds up over long continuations (PIQA's longest, at a
# log-likelihood of -330, differ by 1.2e-4; HFLM itself moves by up to 4e-5 with its batch size).
TOLERANCE = 1e-4
RELATIVE = 1e-6
CHOICES = [" blue", " red and green and a little yellow", " mat", " a rather long answer that runs on and on", " x"]
CONTEXTS = [
    "Question: what colour is the sky?\nAnswer:",
    "Question: which one? Answer: ",  # trailing space: lm-eval moves it into the continuation
    "The cat sat on the",
    "",  # empty context: lm-eval conditions on the prefix token alone
]
WINOGRANDE_STYLE = [  # different contexts, one shared continuation
    ("Sarah was a much better surgeon than Maria so Sarah", " always got the harder cases."),
    ("Sarah was a much better surgeon than Maria so Maria", " always got the harder cases."),
]


def _instances(pairs: list[tuple[str, str]]) -> list[Instance]:
    return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]


def _mc_requests() -> list[Instance]:
    pairs = [(context, choice) for context in CONTEXTS for choice in CHOICES]
    pairs += [("Q: 2+2?\nA. 3\nB. 4\nAnswer:", f" {letter}") for letter in "ABCD"]  # MMLU style: one token each
    pairs += [*WINOGRANDE_STYLE, WINOGRANDE_STYLE[0]]  # and a duplicate request
    return _instances(pairs)


def _max_diff(expected: list[tuple[float, bool]], actual: list[tuple[float, bool]]) -> float:
    """Check the greedy flags are equal and each log-likelihood within tolerance; the largest absolute difference."""
    assert len(expected) == len(actual)
    assert [greedy for _, greedy in expected] == [greedy for _, greedy in actual]
    diffs = [abs(a - b) for (a, _), (b, _) in zip(expected, actual, strict=True)]
    assert all(d <= TOLERANCE + RELATIVE * abs(a) for d, (a, _) in zip(diffs, expected, strict=True)), max(diffs)
    return max(diffs)


def _pair(folder: Path, **options: Any) -> tuple[HFLM, GateHFLM]:
    args: dict[str, Any] = {"pretrained": str(folder), "device": "cpu", "dtype": "float32", **options}
    return HFLM(**args), GateHFLM(**args)


@pytest.mark.parametrize(("batch_size", "attention"), [(1, "sdpa"), (3, "sdpa"), (16, "sdpa"), (3, "eager")])
def test_matches_hflm_on_multiple_choice_requests(tiny_model: Path, batch_size: int, attention: str) -> None:
    reference, scorer = _pair(tiny_model, batch_size=batch_size, attn_implementation=attention)
    assert scorer.model.config._attn_implementation == attention
    requests = _mc_requests()
    assert _max_diff(reference.loglikelihood(requests), scorer.loglikelihood(requests)) < TOLERANCE
    assert scorer.loglikelihood([]) == []


@pytest.mark.parametrize("rows", [1, 3])
def test_logprobs_read_a_few_rows_at_a_time_match_hflm(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    # Chunk borders then fall inside continuations and after a context's last row, which scores every first token.
    reference, scorer = _pair(tiny_model, batch_size=16)
    monkeypatch.setattr("gate.scorer.LOGPROB_CHUNK_BYTES", rows * len(scorer.tokenizer) * 4)
    requests = _mc_requests()
    assert _max_diff(reference.loglikelihood(requests), scorer.loglikelihood(requests)) < TOLERANCE


def test_greedy_flags_match_on_greedy_and_non_greedy_continuations(tiny_model: Path) -> None:
    reference, scorer = _pair(tiny_model, batch_size=4)
    requests = []
    for seed, length in [(0, 1), (1, 3), (2, 5)]:
        context = torch.randint(10, 1000, (7,), generator=torch.Generator().manual_seed(seed))
        with torch.inference_mode():
            greedy = reference.model.generate(context[None], max_new_tokens=length, do_sample=False)[0, 7:].tolist()
        requests += [(None, context.tolist(), greedy), (None, context.tolist(), [*greedy[:-1], greedy[-1] + 1])]
    expected = reference._loglikelihood_tokens(requests)
    actual = scorer._loglikelihood_tokens(requests)
    assert [greedy for _, greedy in actual] == [True, False] * 3
    assert _max_diff(expected, actual) < TOLERANCE


def test_left_truncation_matches_hflm(tiny_model: Path) -> None:
    reference, scorer = _pair(tiny_model, batch_size=4, max_length=12)
    context = list(range(100, 120))
    requests = [(None, context, list(range(200, 200 + n))) for n in (1, 2, 5, 12)]  # 12: one token of context left
    requests.append((None, context[:3], [300, 301]))  # fits: not truncated
    assert group_by_context(requests, 12)[1] == 4
    assert _max_diff(reference._loglikelihood_tokens(requests), scorer._loglikelihood_tokens(requests)) < TOLERANCE


def test_tokenizer_that_adds_bos(tiny_model: Path) -> None:
    reference, scorer = _pair(tiny_model, batch_size=4, add_bos_token=True)
    assert scorer.tok_encode("hello")[0] == scorer.tokenizer.bos_token_id
    requests = _mc_requests()
    assert _max_diff(reference.loglikelihood(requests), scorer.loglikelihood(requests)) < TOLERANCE


def test_lora_adapter_matches_hflm(tiny_model: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), config).save_pretrained(str(tmp_path / "adapter"))
    reference, scorer = _pair(tiny_model, batch_size=4, peft=str(tmp_path / "adapter"))
    requests = _mc_requests()
    assert _max_diff(reference.loglikelihood(requests), scorer.loglikelihood(requests)) < TOLERANCE
    base = HFLM(pretrained=str(tiny_model), device="cpu", dtype="float32", batch_size=4)
    with scorer.model.disable_adapter():  # how the runner scores the base when it shares the loaded model
        assert _max_diff(base.loglikelihood(requests), scorer.loglikelihood(requests)) < TOLERANCE


def test_rolling_loglikelihood_is_unchanged(tiny_model: Path) -> None:
    reference, scorer = _pair(tiny_model, batch_size=2, max_length=16)
    requests = [Instance("loglikelihood_rolling", {}, ("word " * n,), n) for n in (3, 20, 41)]
    expected, actual = reference.loglikelihood_rolling(requests), scorer.loglikelihood_rolling(requests)
    assert max(abs(a - b) for a, b in zip(expected, actual, strict=True)) < TOLERANCE


def _count_tokens(model: Any) -> tuple[dict[str, int], list[Any]]:
    """Count tokens entering the model body and rows entering the lm_head."""
    counts = {"body": 0, "head": 0}

    def body(_: Any, args: tuple[torch.Tensor, ...]) -> None:
        counts["body"] += args[0].numel()

    def head(_: Any, args: tuple[torch.Tensor, ...]) -> None:
        counts["head"] += args[0].numel() // args[0].shape[-1]

    hooks = [
        model.get_input_embeddings().register_forward_pre_hook(body),
        model.get_output_embeddings().register_forward_pre_hook(head),
    ]
    return counts, hooks


def test_each_context_runs_once_and_logits_only_where_scored(tiny_model: Path) -> None:
    _, scorer = _pair(tiny_model, batch_size=1)  # batch 1: no padding, so the counts are exact
    contexts, choices = [[11, 12, 13, 14, 15], [21, 22, 23]], [[31], [41, 42], [51, 52, 53, 54]]
    requests = [(None, context, choice) for context in contexts for choice in choices]
    counts, hooks = _count_tokens(scorer.model)
    scorer._loglikelihood_tokens(requests)
    for hook in hooks:
        hook.remove()
    tail_tokens = sum(len(choice) - 1 for choice in choices)
    assert counts["body"] == sum(len(context) + tail_tokens for context in contexts)
    assert counts["head"] == len(contexts) * (1 + tail_tokens)  # the first token's distribution serves every choice


def test_requests_beyond_a_sliding_window_fall_back_to_hflm(tiny_model: Path) -> None:
    reference, scorer = _pair(tiny_model, batch_size=4)
    scorer.model.config.sliding_window = 6  # packed rows would ignore a window: requests longer than it go to HFLM
    requests = [(None, [11, 12, 13, 14], [21, 22, 23]), (None, [11, 12, 13, 14], [31])]
    counts, hooks = _count_tokens(scorer.model)
    actual = scorer._loglikelihood_tokens(requests)
    for hook in hooks:
        hook.remove()
    assert counts["head"] == counts["body"] == 2 * 6  # HFLM's path: two padded rows, logits everywhere
    assert _max_diff(reference._loglikelihood_tokens(requests), actual) < TOLERANCE


def test_greedy_flags_settle_ties_as_argmax_does() -> None:
    generator = torch.Generator().manual_seed(0)
    logprobs = torch.randint(0, 4, (40, 6), generator=generator).float()  # few values: many tied maxima
    logprobs[0, 2] = logprobs[1, 0] = float("nan")  # argmax reads a NaN as the maximum
    scored = torch.cat([torch.tensor([0, 0, 1, 1]), torch.randint(0, 40, (200,), generator=generator)])
    targets = torch.cat([torch.tensor([2, 3, 0, 1]), torch.randint(0, 6, (200,), generator=generator)])
    original = logprobs.clone()
    hits = _greedy(logprobs, scored, targets)
    assert hits.tolist() == (original.argmax(dim=-1)[scored] == targets).tolist()
    assert 0 < int(hits.sum()) < int((original[scored, targets] == original.amax(dim=-1)[scored]).sum())
    torch.testing.assert_close(logprobs, original, rtol=0, atol=0, equal_nan=True)


def test_length_buckets_limit_padding_and_tokens() -> None:
    assert list(length_buckets([10, 10, 9, 5, 5, 1], budget=30)) == [slice(0, 3), slice(3, 5), slice(5, 6)]
    assert list(length_buckets([50, 4], budget=30)) == [slice(0, 1), slice(1, 2)]  # too wide still gets a batch


def test_group_by_context_shares_contexts_and_deduplicates() -> None:
    requests = [(None, [1, 2], [3]), (None, [1, 2], [4, 5]), (None, [1, 2], [3]), (None, [9], [4, 5])]
    groups, truncated = group_by_context(requests, max_length=8)
    assert truncated == 0
    assert [(g.tokens, g.continuations) for g in groups] == [
        ([1, 2], {(3,): [0, 2], (4, 5): [1]}),
        ([9], {(4, 5): [3]}),
    ]
    with pytest.raises(ValueError, match="continuation of 0 tokens"):
        group_by_context([(None, [1], [])], max_length=8)


def test_lm_eval_tasks_score_the_same_through_simple_evaluate(tiny_model: Path, tiny_suite: Path) -> None:
    import lm_eval

    from gate.suites import bare_task_manager, load_suite, prepare_tasks

    (task,) = prepare_tasks(load_suite(str(tiny_suite)), seed=0, data_dir=tiny_suite.parent / "mirror")
    args = resolve_model(str(tiny_model)).hflm_args(
        device="cpu", dtype="float32", batch_size=8, trust_remote_code=False
    )
    responses = []
    for lm in (HFLM(**args), load_scorer_model(args)):
        results = lm_eval.simple_evaluate(
            model=lm, tasks=[task.lm_eval_config], samples={task.spec.id: list(task.doc_ids)}, log_samples=True,
            bootstrap_iters=0, task_manager=bare_task_manager(),
        )
        assert results is not None
        samples = sorted(results["samples"][task.spec.id], key=lambda sample: sample["doc_id"])
        responses.append([(float(ll), bool(greedy)) for sample in samples for (ll, greedy), in sample["resps"]])
    assert len(responses[0]) == 4 * len(task.doc_ids)
    assert _max_diff(*responses) < TOLERANCE


# --- the real embedded model on real benchmark items -------------------------------------------------------------

def _suite_requests(items: int) -> Iterator[tuple[str, list[Instance]]]:
    """The loglikelihood requests of a few seeded items of every multiple-choice task of the shipped suites."""
    from gate.suites import bare_task_manager, load_suite, prepare_tasks

    for suite, data_dir in (("core", None), ("general", TEST_DATA)):
        for prepared in prepare_tasks(load_suite(suite), seed=5, data_dir=data_dir, max_items=items):
            if prepared.lm_eval_config.get("output_type", "generate_until") == "generate_until":
                continue  # generation never reaches the log-likelihood scorer
            task = bare_task_manager().load([prepared.lm_eval_config])["tasks"][prepared.spec.id]
            task.build_all_requests(samples=list(prepared.doc_ids))
            yield prepared.spec.id, list(task.instances)


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """One torch thread: on a shared runner, intra-op threads waiting on each other made this test 4x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_matches_hflm_on_every_multiple_choice_task_of_the_suites(capsys: pytest.CaptureFixture[str]) -> None:
    args = resolve_model("smollm2-135m-instruct").hflm_args(
        device="cpu", dtype="float32", batch_size=8, trust_remote_code=False
    )
    assert args["pretrained"] == str(smollm2_folder()) and args["gguf_file"] == SMOLLM2_GGUF
    reference = HFLM(**args)
    scorer = load_scorer_model(args)  # dequantises once into the (per-session) gate cache
    folder = dequantised_folder(smollm2_folder() / SMOLLM2_GGUF)
    written = folder.stat().st_mtime_ns
    assert dequantised_folder(smollm2_folder() / SMOLLM2_GGUF) == folder and folder.stat().st_mtime_ns == written
    diffs = {}
    for task_id, requests in _suite_requests(items=4):
        diffs[task_id] = _max_diff(reference.loglikelihood(requests), scorer.loglikelihood(requests))
    with capsys.disabled():
        print("\nmax |loglik diff| per task:", {k: f"{v:.2e}" for k, v in diffs.items()})
    assert set(diffs) == {
        "core_facts_mc", "core_logic_mc", "core_reading_mc",
        "hellaswag", "arc_easy", "arc_challenge", "piqa", "winogrande", "boolq", "openbookqa",
        "truthfulqa_mc1", "truthfulqa_mc2", "lambada_openai", "mmlu",
    }


def test_an_adapter_on_the_gguf_base_parses_the_gguf_once_from_resolve_to_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter's fit check reads the GGUF base's config from the folder the load dequantises into: one parse of
    the GGUF's metadata a run (each takes seconds), and an adapter of another model is still refused by shape."""
    import gguf
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from gate.config import GateConfig
    from gate.errors import ModelRefError
    from gate.loading.loaders import ScoringSettings
    from gate.runconfig import resolve_pair
    from gate.runner import ModelPair

    base_folder = dequantised_folder(smollm2_folder() / SMOLLM2_GGUF)  # the session's cache, to build the adapter
    model = AutoModelForCausalLM.from_pretrained(base_folder, dtype=torch.float32)
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(str(tmp_path / "fits"))
    small = AutoConfig.from_pretrained(base_folder, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, head_dim=16)
    other = AutoModelForCausalLM.from_config(small)  # type: ignore[no-untyped-call]
    get_peft_model(other, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(str(tmp_path / "misfit"))
    parses = []

    class Counted(gguf.GGUFReader):
        def __init__(self, path: Any, *args: Any) -> None:
            parses.append(path)
            super().__init__(path, *args)

    monkeypatch.setattr(gguf, "GGUFReader", Counted)
    config = GateConfig(cache_dir=str(tmp_path / "fresh-cache"))  # nothing dequantised there yet
    checkpoint, base = resolve_pair(str(tmp_path / "fits"), "smollm2-135m-instruct", config)
    settings = ScoringSettings(device="cpu", dtype="float32", batch_size=1)
    with ModelPair(base, checkpoint, settings, cache_dir=tmp_path / "fresh-cache") as models:
        assert models.adapter_on_base
    assert len(parses) == 1, parses
    with pytest.raises(ModelRefError, match=r"does not fit the base smollm2-135m-instruct \(.*q_proj"):
        resolve_pair(str(tmp_path / "misfit"), "smollm2-135m-instruct", config)
    assert len(parses) == 1  # the second check read the dequantised folder's config
