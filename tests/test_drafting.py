"""Drafted greedy generation against lm-eval's HFLM: the same answers whatever the draft, fewer forward passes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import SMOLLM2_GGUF, smollm2_folder
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from gate.drafting import DraftBook, drafting_blocker, is_greedy
from gate.loading.gguf import dequantised_folder
from gate.loading.loaders import load_scorer_model
from gate.loading.references import resolve_model
from gate.scorer import GateHFLM

NEAR_TIE = 1e-4
PROMPTS = [
    "Question: what colour is the sky?\nAnswer:",
    "Write a list of three fruits.",
    "The cat sat on the",
    "Count: one, two, three,",
    "Q: 2+2?\nA:",
]
# Stop strings and token caps of lm-eval's greedy tasks: a stop that random text hits soon, none, a newline pair.
SETTINGS: list[dict[str, Any]] = [
    {"until": ["e"], "max_gen_toks": 12, "do_sample": False},
    {"until": [], "max_gen_toks": 7},
    {"until": ["\n\n", "t"], "max_gen_toks": 20, "do_sample": False, "temperature": 0.0},
]


def _requests(settings: list[dict[str, Any]], prompts: list[str] = PROMPTS) -> list[Instance]:
    pairs = [(prompt, dict(kwargs)) for kwargs in settings for prompt in prompts]
    return [Instance("generate_until", {}, pair, i) for i, pair in enumerate(pairs)]


def _drafted(lm: GateHFLM, requests: list[Instance], book: DraftBook) -> list[str]:
    lm.draft_book, lm.draft_role = book, "checkpoint"
    return lm.generate_until(requests, disable_tqdm=True)


def _recorded(lm: GateHFLM, requests: list[Instance]) -> tuple[list[str], DraftBook]:
    """The model's answers through the base's path, and the book holding them as drafts."""
    book = DraftBook()
    lm.draft_book, lm.draft_role = book, "base"
    return lm.generate_until(requests, disable_tqdm=True), book


@pytest.mark.parametrize("batch_size", [1, 8])
def test_answers_match_hflm_with_full_partial_wrong_and_missing_drafts(
    tiny_model: Path, other_tiny_model: Path, batch_size: int
) -> None:
    args = {"device": "cpu", "dtype": "float32", "batch_size": batch_size}
    reference = HFLM(pretrained=str(tiny_model), **args)
    lm = GateHFLM(pretrained=str(tiny_model), **args)
    other = GateHFLM(pretrained=str(other_tiny_model), **args)
    requests = _requests(SETTINGS)
    expected = reference.generate_until(requests, disable_tqdm=True)
    assert lm.generate_until(requests, disable_tqdm=True) == expected  # no book: lm-eval's path

    own, own_book = _recorded(lm, requests)
    assert own == expected
    assert _drafted(lm, requests, own_book) == expected
    assert own_book.stats["checkpoint"].accepted == own_book.stats["checkpoint"].drafted  # every token accepted

    # Another model's answers: rejected early (random weights), the rest decoded on the accepted prefix's cache.
    _, other_book = _recorded(other, requests)
    assert _drafted(lm, requests, other_book) == expected
    assert _drafted(lm, requests, DraftBook()) == expected  # no drafts: plain greedy decoding

    # Own answers cut or corrupted halfway: accepted up to the change, then decoded on.
    corrupted = DraftBook()
    for request in requests:
        ids = own_book.draft(request.args[0], lm.tokenizer)
        half = len(ids) // 2
        corrupted.record_ids(request.args[0], [*ids[:half], (ids[half] + 1) % len(lm.tokenizer), *ids[half + 1 :]])
    assert _drafted(lm, requests, corrupted) == expected
    assert 0 < sum(corrupted.stats["checkpoint"].accepted) < sum(corrupted.stats["checkpoint"].drafted)


def test_a_text_draft_from_the_result_cache_is_re_tokenised(tiny_model: Path) -> None:
    lm = GateHFLM(pretrained=str(tiny_model), device="cpu", dtype="float32", batch_size=4)
    requests = _requests(SETTINGS[1:2])
    expected, _ = _recorded(lm, requests)
    texts = DraftBook()
    for request, answer in zip(requests, expected, strict=True):
        texts.record_text(request.args[0], answer)
    assert _drafted(lm, requests, texts) == expected
    assert sum(texts.stats["checkpoint"].accepted) > 0


def test_each_accepted_draft_saves_its_forward_passes(tiny_model: Path) -> None:
    lm = GateHFLM(pretrained=str(tiny_model), device="cpu", dtype="float32", batch_size=8)
    requests = _requests([{"until": [], "max_gen_toks": 40}])
    _, book = _recorded(lm, requests)
    assert book.stats["base"].forward_passes == 40  # one batch, one token per pass
    expected = _drafted(lm, requests, book)
    # Windows of 8, 16 and the last 14 draft tokens, each pass also giving the model's own next token.
    assert book.stats["checkpoint"].forward_passes == 3
    summary = book.summary()["checkpoint"]
    assert summary["accepted_per_item"]["min"] == 40 and summary["drafted_requests"] == len(PROMPTS)

    # A draft wrong from its first token costs a first window, not the whole draft: the same passes as plain
    # decoding, the first one 8 draft tokens wider than the prompt.
    wrong = DraftBook()
    for request in requests:
        wrong.record_ids(request.args[0], [token + 1 for token in book.draft(request.args[0], lm.tokenizer)])
    widths: list[int] = []
    hook = lm.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        assert _drafted(lm, requests, wrong) == expected
    finally:
        hook.remove()
    prompt = max(len(lm.tok_encode(request.args[0])) for request in requests)
    assert widths == [prompt + 8] + [1] * 39
    assert wrong.summary()["checkpoint"]["accepted_tokens"] == 0


def test_sampling_and_non_greedy_settings_keep_lm_evals_path(tiny_model: Path) -> None:
    assert is_greedy({"until": ["\n"], "do_sample": False}, 256)
    assert is_greedy({"max_new_tokens": 3}, 256)
    assert not is_greedy({"do_sample": True, "temperature": 0.7}, 256)
    assert not is_greedy({"temperature": 0.5}, 256)
    assert not is_greedy({"until": [], "top_k": 5, "repetition_penalty": 1.3}, 256)
    lm = GateHFLM(pretrained=str(tiny_model), device="cpu", dtype="float32", batch_size=4)
    book = DraftBook()
    lm.draft_book = book
    torch.manual_seed(0)
    sampled = _requests([{"until": [], "max_gen_toks": 3, "do_sample": True, "temperature": 1.0}])
    assert len(lm.generate_until(sampled, disable_tqdm=True)) == len(PROMPTS)
    assert book.stats["base"].requests == 0
    assert drafting_blocker(lm) is None
    lm.model.generation_config.repetition_penalty = 1.2
    assert drafting_blocker(lm) == "its generation config sets repetition_penalty"


# --- the real embedded model on the core suite's generation items -------------------------------------------------

def _core_generation_requests(lm: HFLM, items: int) -> Iterator[Instance]:
    """The requests of a few seeded items of each generation task of core, prompted as the gate prompts them."""
    from gate.suites import bare_task_manager, load_suite, prepare_tasks

    for prepared in prepare_tasks(load_suite("core"), seed=3, max_items=items):
        if prepared.lm_eval_config.get("output_type", "generate_until") != "generate_until":
            continue
        task = bare_task_manager().load([prepared.lm_eval_config])["tasks"][prepared.spec.id]
        template = prepared.spec.chat_template
        task.build_all_requests(
            samples=sorted(prepared.doc_ids),
            apply_chat_template=template,
            fewshot_as_multiturn=template,
            chat_template=lm.apply_chat_template if template else None,
            tokenizer_name=lm.tokenizer_name if template else "",
        )
        yield from task.instances


def _gentle_adapter(folder: Path, base: Path, scale: float) -> Path:
    """A LoRA adapter on the real model with small random weights: a checkpoint whose answers mostly stay."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False),
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.mul_(scale)
    model.save_pretrained(folder)
    return folder


def _near_ties(lm: HFLM, requests: list[Instance], expected: list[str], actual: list[str]) -> list[float]:
    """For each differing answer, the model's top-2 logit gap where the two answers' tokens first differ."""
    gaps = []
    for request, want, got in zip(requests, expected, actual, strict=True):
        if want == got:
            continue
        left, right = lm.tok_encode(want, add_special_tokens=False), lm.tok_encode(got, add_special_tokens=False)
        shared = min(len(left), len(right))
        common = next((i for i, (a, b) in enumerate(zip(left, right, strict=False)) if a != b), shared)
        with torch.inference_mode():
            logits = lm.model(torch.tensor([lm.tok_encode(request.args[0]) + left[:common]])).logits[0, -1]
        top = torch.topk(logits.float(), 2).values
        gaps.append(float(top[0] - top[1]))
    return gaps


@pytest.mark.slow
def test_real_model_drafted_answers_equal_hflm_greedy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = resolve_model("smollm2-135m-instruct").hflm_args(
            device="cpu", dtype="float32", batch_size=8, trust_remote_code=False
        )
        lm = load_scorer_model(args)  # the dequantised model folder
        assert isinstance(lm, GateHFLM)
        folder = dequantised_folder(smollm2_folder() / SMOLLM2_GGUF)
        requests = list(_core_generation_requests(lm, items=2))
        assert len(requests) == 8

        # The base: recorded through the gate's path, equal to lm-eval's greedy answers.
        base_answers, book = _recorded(lm, requests)
        base_reference = HFLM(pretrained=str(folder), device="cpu", dtype="float32", batch_size=8)
        expected_base = base_reference.generate_until(requests, disable_tqdm=True)
        gaps = _near_ties(lm, requests, expected_base, base_answers)
        del base_reference

        # A checkpoint that changed a little: drafted by the base's answers, equal to its own HFLM greedy answers.
        adapter = _gentle_adapter(tmp_path / "adapter", folder, scale=0.05)
        reference = HFLM(pretrained=str(folder), peft=str(adapter), device="cpu", dtype="float32", batch_size=8)
        expected = reference.generate_until(requests, disable_tqdm=True)
        checkpoint = GateHFLM(pretrained=str(folder), peft=str(adapter), device="cpu", dtype="float32", batch_size=8)
        actual = _drafted(checkpoint, requests, book)
        gaps += _near_ties(checkpoint, requests, expected, actual)
        stats = book.summary()["checkpoint"]
    finally:
        torch.set_num_threads(threads)
    with capsys.disabled():
        print(f"\ndrafted generation on the real model: {stats}; differing answers' top-2 gaps: {gaps}")
    assert all(gap < NEAR_TIE for gap in gaps)
    assert expected != base_answers  # the adapter changed some answers, so drafts were partly rejected
    assert 0 < stats["accepted_tokens"] < stats["generated_tokens"]


TINY_GENERATION = """\
task: tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: tiny_gen.jsonl
test_split: test
output_type: generate_until
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def test_the_cached_base_answers_draft_the_next_checkpoint(
    tmp_path: Path, tiny_model: Path, other_tiny_model: Path, tiny_suite: Path
) -> None:
    from gate.api import run
    from gate.config import GateConfig

    (tiny_suite / "tiny_gen.yaml").write_text(TINY_GENERATION)
    spec = (tiny_suite / "suite.yaml").read_text().replace("config: tiny_mc.yaml", "config: tiny_gen.yaml")
    spec = spec.replace("id: tiny_mc", "id: tiny_gen").replace("metric: acc", "metric: exact_match")
    (tiny_suite / "suite.yaml").write_text(spec.replace("tiny_mc.jsonl", "tiny_gen.jsonl"))
    with (tiny_suite.parent / "mirror" / "tiny_gen.jsonl").open("w") as handle:
        for i in range(40):
            handle.write(f'{{"question": "What comes after {i}?", "answer": "{i + 1}"}}\n')

    def gate(ckpt: Path, cache: Path | None) -> dict[str, Any]:
        config = GateConfig(mode="fixed", cache=cache is not None, cache_dir=str(cache) if cache else None)
        return run(str(ckpt), base=str(tiny_model), config=config, suite=str(tiny_suite),
                   data_dir=tiny_suite.parent / "mirror", out_dir=None).to_dict()

    cache = tmp_path / "cache"
    first = gate(other_tiny_model, cache)
    assert first["timing"]["drafting"]["checkpoint"]["drafted_requests"] == 40  # drafted by the base's run
    nudged = _nudged_copy(tiny_model, tmp_path / "nudged")  # another checkpoint, with mostly the base's answers
    second = gate(nudged, cache)  # the base's answers come from the cache, as text
    assert second["timing"]["cache"]["hits"]["base"] == 40
    drafting = second["timing"]["drafting"]
    assert "base" not in drafting and drafting["checkpoint"]["drafted_requests"] == 40
    assert drafting["checkpoint"]["accepted_tokens"] > 0
    uncached = gate(nudged, None)
    assert second["tasks"] == uncached["tasks"]


def _nudged_copy(model: Path, folder: Path) -> Path:
    """The model with its final norm scaled by 1.001: other weights, nearly the same answers."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(model, folder)
    weights = load_file(folder / "model.safetensors")
    weights["model.norm.weight"] = weights["model.norm.weight"] * 1.001
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
