"""The model-family matrix: every family people fine-tune, each a tiny seeded random-weight model with a real tokenizer.

Per family: the shared-prefix scorer equals lm-eval's HFLM on token-boundary requests; generation with left padding
equals batch size 1; the chat template yields one BOS; a full `gate run` of a LoRA adapter and of a merged folder
against the base PASSes with zero delta unchanged and FAILs perturbed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from families import FAMILIES, build_model, build_tokenizer
from helpers import gate_run
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from gate.scorer import GateHFLM

pytestmark = pytest.mark.slow
TOLERANCE = 1e-4
NAMES = sorted(FAMILIES)
# CI runs every check on every family; GATE_FULL_MATRIX=1 adds the gate runs that add the least (EVERY_FORM below).
FULL_MATRIX = os.environ.get("GATE_FULL_MATRIX") == "1"
# Every row gates an unchanged LoRA adapter (PASS, zero delta) and a perturbed adapter's merged folder (FAIL). These
# rows, and every row with the full matrix, also gate the perturbed adapter itself (FAIL, the merged folder's items)
# and the unchanged adapter's merged folder (PASS): LoRA on fused expert weights, soft-capped sliding-window
# attention, fused qkv / gate_up projections.
EVERY_FORM = set(NAMES) if FULL_MATRIX else {"deepseek-v3", "gemma2", "phi3"}
CONTEXTS = [
    "Question: what colour is the sky?\nAnswer:",
    "Which one? Answer: ",  # trailing space: lm-eval moves it into the continuation
    "",  # empty context: lm-eval conditions on the BOS (or EOS) token alone
    "Ça coûte 5 € — der Bär sagt:",
    "日本の首都は",
    "The parrot 🦜 said",  # byte fallback in SentencePiece vocabularies
]
CONTINUATIONS = [" blue", "blue", " 東京です", " 🦜🦜 squawk", "\n\nNo.", " Straße"]
LONG = " ".join(f"item{i} ☃" for i in range(40))  # longer than the window and than max_length below


@pytest.fixture(autouse=True)
def few_drift_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two probe texts instead of the shipped set: drift (reported, never the verdict) is not what this file tests,
    and on tiny models it is most of a gate run's time."""
    from gate import drift

    texts = drift.probe_texts()[:2]
    monkeypatch.setattr(drift, "probe_texts", lambda: texts)


@pytest.fixture(scope="session")
def family_tokenizers(
    tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path
) -> Iterator[dict[str, Path]]:
    """Tokenizer folders built on first use, one per kind, for the whole session (SmolLM2's is conftest's)."""
    root = tmp_path_factory.mktemp("family-tokenizers")

    class Lazy(dict[str, Path]):
        def __missing__(self, kind: str) -> Path:
            self[kind] = build_tokenizer(kind, root / kind)
            return self[kind]

    yield Lazy({"smollm2-bpe": smollm2_tokenizer_dir})


@pytest.fixture(scope="session")
def family_models(tmp_path_factory: pytest.TempPathFactory, family_tokenizers: dict[str, Path]) -> Any:
    """name -> (base folder, loaded model, tokenizer), built once per family for the session."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("family-models")
    cache: dict[str, tuple[Path, Any, Any]] = {}

    def get(name: str) -> tuple[Path, Any, Any]:
        if name not in cache:
            family = FAMILIES[name]
            folder = build_model(family, family_tokenizers[family.tokenizer], root / name, seed=0)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
            cache[name] = (folder, model.eval(), AutoTokenizer.from_pretrained(folder))
        return cache[name]

    return get


def _instances(pairs: list[tuple[str, str]]) -> list[Instance]:
    return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]


def _lms(model: Any, tokenizer: Any, **options: Any) -> tuple[HFLM, GateHFLM]:
    args = {"pretrained": model, "tokenizer": tokenizer, "device": "cpu", **options}
    return HFLM(**args), GateHFLM(**args)


def _compare(expected: list[tuple[float, bool]], actual: list[tuple[float, bool]], tolerance: float) -> float:
    assert [greedy for _, greedy in expected] == [greedy for _, greedy in actual]
    diffs = [abs(a - b) for (a, _), (b, _) in zip(expected, actual, strict=True)]
    assert max(diffs) <= tolerance, max(diffs)
    return max(diffs)


@pytest.mark.parametrize("name", NAMES)
def test_scorer_matches_hflm_on_token_boundaries(
    name: str, family_models: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model, tokenizer = family_models(name)
    reference, scorer = _lms(model, tokenizer, batch_size=4, max_length=48)
    packed: list[int] = []
    score = GateHFLM._score
    monkeypatch.setattr(GateHFLM, "_score", lambda self, batch: (packed.append(len(batch)), score(self, batch))[1])
    short = _instances([(c, x) for c in CONTEXTS for x in CONTINUATIONS])
    window = getattr(model.config.get_text_config(), "sliding_window", None)
    fits = all(
        len(c) + len(x) <= (window or 10**9)
        for c, x in (
            scorer._encode_pair(*r.args) if r.args[0] else ([scorer.prefix_token_id], scorer.tok_encode(r.args[1]))
            for r in short
        )
    )
    largest = _compare(reference.loglikelihood(short), scorer.loglikelihood(short), TOLERANCE)
    assert bool(packed) == fits, "the shared-prefix path ran exactly when every request fits the sliding window"
    # Near and past max_length (left truncation) and past the sliding window: HFLM's own batches where they differ.
    long = _instances([(LONG[:n], x) for n in (60, 120, 400) for x in (" blue", " 🦜 ok", "x")])
    largest = max(largest, _compare(reference.loglikelihood(long), scorer.loglikelihood(long), TOLERANCE))
    with capsys.disabled():
        print(f"\n{name} float32: largest |scorer - HFLM| {largest:.2e} over {len(short) + len(long)} requests")
    if window:
        assert any(len(ctx) + len(cont) > window for ctx, cont in (scorer._encode_pair(*r.args) for r in long))


WORDS = [
    *("apple", "river", "stone", "cloud", "tiger", "violin", "orange", "castle"),
    *("pepper", "rocket", "garden", "silver", "lemon", "mirror", "candle"),
]
FAMILY_TASK = """\
task: family_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: family_mc.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_choice: "{{choices}}"
doc_to_target: "{{answer}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
ITEMS = 40


def _family_suite(folder: Path, scorer: GateHFLM, items: int = ITEMS, chat: bool = False) -> Path:
    """A 40-item multiple-choice suite whose answers are the base's own choices: the base scores 100%, and a model
    that moved away from it loses accuracy exactly where it disagrees."""
    generator = torch.Generator().manual_seed(7)
    docs = []
    for i in range(items):
        picks = torch.randperm(len(WORDS), generator=generator)[:4].tolist()
        docs.append({"question": f"Which word comes {i}th?", "choices": [WORDS[p] for p in picks]})
    requests = _instances([(f"Question: {d['question']}\nAnswer:", f" {c}") for d in docs for c in d["choices"]])
    scores = [ll for ll, _ in scorer.loglikelihood(requests)]
    suite, mirror = folder / "suite", folder / "mirror"
    suite.mkdir(parents=True)
    mirror.mkdir()
    with (mirror / "family_mc.jsonl").open("w") as handle:
        for i, doc in enumerate(docs):
            own = scores[4 * i : 4 * i + 4]
            handle.write(json.dumps({**doc, "answer": own.index(max(own))}) + "\n")
    # A description becomes a system message under a chat template.
    (suite / "family_mc.yaml").write_text(FAMILY_TASK + ('description: "Pick the word."\n' if chat else ""))
    (suite / "suite.yaml").write_text(
        "name: family\nversion: 1\ndescription: base-labelled items\ncomposite_budget: 10.0\ntasks:\n"
        "  - id: family_mc\n"
        f"    config: family_mc.yaml\n    capability: knowledge\n    metric: acc\n    items: {items}\n"
        f"    chat_template: {str(chat).lower()}\n"
        "    budget: 10.0\n    data: {file: family_mc.jsonl, split: test}\n"
    )
    return suite


def _adapter(base: Path, folder: Path, perturbed: bool, merge: bool = True) -> tuple[Path, Path | None]:
    """A LoRA adapter on every linear layer of `base` (zero update unless perturbed), and its merged folder."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=64, target_modules="all-linear", init_lora_weights=not perturbed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), config)
    targeted = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name.endswith("lora_A")}
    assert targeted, "all-linear found no LoRA target in this architecture"
    model.save_pretrained(folder / "adapter")
    if not merge:
        return folder / "adapter", None
    model.merge_and_unload().save_pretrained(folder / "merged", safe_serialization=True)
    for path in base.iterdir():  # the base's tokenizer files, as a merge script copies them
        if not (folder / "merged" / path.name).exists():
            shutil.copy(path, folder / "merged")
    return folder / "adapter", folder / "merged"


@pytest.mark.parametrize("name", NAMES)
def test_gate_run_of_adapter_and_merged_folder(name: str, family_models: Any, tmp_path: Path) -> None:
    base, model, tokenizer = family_models(name)
    suite = _family_suite(tmp_path, GateHFLM(pretrained=model, tokenizer=tokenizer, device="cpu", batch_size=8))
    every_form = name in EVERY_FORM
    unchanged = _adapter(base, tmp_path / "unchanged", perturbed=False, merge=every_form)
    perturbed_adapter, perturbed_merged = _adapter(base, tmp_path / "perturbed", perturbed=True)
    for ckpt in unchanged:
        if ckpt is not None:
            result = gate_run(ckpt, base, suite, None)
            assert result["verdict"] == "PASS", (ckpt.name, result["verdict"])
            assert all(task["delta"] == 0 and task["discordance"] == 0 for task in result["tasks"])
    assert perturbed_merged is not None
    failed = [gate_run(ckpt, base, suite, None) for ckpt in [perturbed_merged] + [perturbed_adapter] * every_form]
    assert {result["verdict"] for result in failed} == {"FAIL"}
    # The merged folder answers item by item as the adapter on the base does.
    assert all(result["tasks"][0]["items"] == failed[0]["tasks"][0]["items"] for result in failed)


@pytest.mark.parametrize("name", NAMES)
def test_generation_with_left_padding_equals_batch_size_one(name: str, family_models: Any) -> None:
    from lm_eval.api.instance import Instance

    _, model, tokenizer = family_models(name)
    prompts = ["Q: name a colour.\nA:", "日本の首都は", "The parrot 🦜 said that the weather in the old town", "Hi"]
    options = {"until": ["\n\n"], "max_gen_toks": 6, "do_sample": False}
    requests = [Instance("generate_until", {}, (p, options), i) for i, p in enumerate(prompts)]
    texts = {}
    for size in (1, 4):
        lm = GateHFLM(pretrained=model, tokenizer=tokenizer, device="cpu", batch_size=size)
        texts[size] = lm.generate_until(requests)
    assert texts[1] == texts[4] and any(texts[1])


@pytest.mark.parametrize("name", [name for name in NAMES if FAMILIES[name].template])
def test_chat_prompt_has_one_bos_and_keeps_the_system_text(name: str, family_models: Any) -> None:
    _, model, tokenizer = family_models(name)
    lm = GateHFLM(pretrained=model, tokenizer=tokenizer, device="cpu", batch_size=2)
    prompt = lm.apply_chat_template([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}])
    assert "Be terse." in prompt and "Hi" in prompt
    bos = tokenizer.bos_token_id
    adds_bos = bos is not None and tokenizer("x").input_ids[:1] == [bos]
    encoded = {
        "loglikelihood context": lm._encode_pair(prompt, " yes")[0],
        "generation prompt": lm.tok_batch_encode([prompt, prompt + " more"])[0][0].tolist(),
    }
    for where, ids in encoded.items():
        expected = int(adds_bos or prompt.startswith(str(tokenizer.bos_token)))
        assert ids.count(bos) == expected if bos is not None else True, (where, tokenizer.convert_ids_to_tokens(ids))


def test_chat_template_task_without_a_template_is_refused_unless_gate_yaml_gives_one(
    family_tokenizers: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gate.errors import BadInputError

    family = FAMILIES["gemma2"]
    bare = build_model(family, family_tokenizers[family.tokenizer], tmp_path / "bare", seed=0, template=False)
    model = AutoModelForCausalLM.from_pretrained(bare, dtype=torch.float32)
    lm = GateHFLM(pretrained=model, tokenizer=AutoTokenizer.from_pretrained(bare), device="cpu", batch_size=8)
    plain = _family_suite(tmp_path / "plain", lm, items=8)
    plain_result = gate_run(bare, bare, plain, None)  # plain prompts need no template (8 items: PASS or WARN)
    assert plain_result["verdict"] != "FAIL" and plain_result["tasks"][0]["delta"] == 0
    chat = _family_suite(tmp_path / "chat", lm, items=8, chat=True)
    with pytest.raises(BadInputError, match=r"family_mc is scored with a chat template, but .* has none") as refused:
        gate_run(bare, bare, chat, None)
    assert "\n" not in str(refused.value)
    config = tmp_path / "gate.yaml"
    config.write_text(json.dumps({"chat_template": family.template}))  # JSON is YAML
    out = tmp_path / "out"
    result = gate_run(bare, bare, chat, out, config)
    assert result["verdict"] != "FAIL" and result["tasks"][0]["delta"] == 0
    assert result["tasks"][0]["chat_template"] is True
    # Gemma's template refuses the system message the description becomes: the gate says it moved it.
    assert "the chat template refuses a system message" in caplog.text


def test_gguf_of_a_qwen2_model_loads_through_the_embedded_models_path(
    family_models: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gguf
    from families import write_qwen2_gguf

    from gate.loading.loaders import load_scorer_model
    from gate.loading.references import resolve_model

    folder, model, tokenizer = family_models("qwen2")
    gguf_file = write_qwen2_gguf(folder, tokenizer, tmp_path / "tiny-qwen2.F32.gguf")
    resolved = resolve_model(str(gguf_file))
    assert resolved.kind == "gguf"
    parses: list[object] = []  # transformers reads the metadata for the config, the weights and the tokenizer
    parse = gguf.GGUFReader._build_fields
    monkeypatch.setattr(gguf.GGUFReader, "_build_fields", lambda *args: (parses.append(args), parse(*args))[1])
    loaded = load_scorer_model(resolved.hflm_args(device="cpu", dtype="float32", batch_size=4, trust_remote_code=False))
    assert len(parses) == 1, "the 151k-token vocabulary is parsed once"
    assert loaded.model.config.model_type == "qwen2"
    text = "Ça coûte 5 € — 日本の首都は 🦜"
    assert loaded.tokenizer(text).input_ids == tokenizer(text).input_ids
    requests = _instances([(c, x) for c in CONTEXTS[:4] for x in CONTINUATIONS[:3]])
    direct = GateHFLM(pretrained=model, tokenizer=tokenizer, device="cpu", batch_size=4)
    _compare(direct.loglikelihood(requests), loaded.loglikelihood(requests), TOLERANCE)


# Measured largest |scorer - HFLM| in half precision on the llama3, mistral and gemma2 rows: 0 in both dtypes (the
# logits round to the same half-precision values; float32 differs by up to 7.6e-6). The bound kept is float32's.
HALF_TOLERANCE = {"bfloat16": 1e-4, "float16": 1e-4}


@pytest.mark.parametrize("dtype", sorted(HALF_TOLERANCE))
@pytest.mark.parametrize("name", ["llama3", "mistral"])  # byte-level BPE, SentencePiece
def test_half_precision_scorer_and_unchanged_adapter(
    name: str,
    dtype: str,
    family_models: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import copy

    base, model, tokenizer = family_models(name)
    half = copy.deepcopy(model).to(getattr(torch, dtype))
    reference, scorer = _lms(half, tokenizer, batch_size=4)
    packed: list[int] = []
    score = GateHFLM._score
    monkeypatch.setattr(GateHFLM, "_score", lambda self, batch: (packed.append(len(batch)), score(self, batch))[1])
    # Requests within the sliding window, so the shared-prefix path (not HFLM's) scores them.
    requests = _instances([(c, x) for c in CONTEXTS[:3] for x in (" blue", "blue", "\n\nNo.", " Straße")])
    expected, actual = reference.loglikelihood(requests), scorer.loglikelihood(requests)
    assert packed
    diffs = [abs(a - b) for (a, _), (b, _) in zip(expected, actual, strict=True)]
    with capsys.disabled():
        print(f"\n{name} {dtype}: largest |scorer - HFLM| {max(diffs):.2e} over {len(diffs)} requests")
    assert max(diffs) <= HALF_TOLERANCE[dtype]
    suite = _family_suite(tmp_path, GateHFLM(pretrained=model, tokenizer=tokenizer, device="cpu", batch_size=8))
    adapter, _ = _adapter(base, tmp_path / "unchanged", perturbed=False, merge=False)
    config = tmp_path / "gate.yaml"
    config.write_text(f"dtype: {dtype}\n")
    result = gate_run(adapter, base, suite, None, config)
    assert result["verdict"] == "PASS" and result["tasks"][0]["delta"] == 0 and result["tasks"][0]["discordance"] == 0
