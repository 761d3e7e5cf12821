"""The model-family matrix: every family people fine-tune, each a tiny seeded random-weight model with a real tokenizer.

Per family: the shared-prefix scorer equals lm-eval's HFLM on token-boundary requests; generation with left padding
equals batch size 1; the chat template yields one BOS; a full `gate run` of a LoRA adapter and of a merged folder
against the base PASSes with zero delta unchanged and FAILs perturbed.
"""

from __future__ import annotations

import json
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


@pytest.fixture(scope="session")
def family_tokenizers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Tokenizer folders built on first use, one per kind, for the whole session."""
    root = tmp_path_factory.mktemp("family-tokenizers")
    built: dict[str, Path] = {}

    class Lazy(dict[str, Path]):
        def __missing__(self, kind: str) -> Path:
            built[kind] = build_tokenizer(kind, root / kind)
            self[kind] = built[kind]
            return built[kind]

    yield Lazy()


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
def test_scorer_matches_hflm_on_token_boundaries(name: str, family_models: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, model, tokenizer = family_models(name)
    reference, scorer = _lms(model, tokenizer, batch_size=4, max_length=48)
    packed: list[int] = []
    score = GateHFLM._score
    monkeypatch.setattr(GateHFLM, "_score", lambda self, batch: (packed.append(len(batch)), score(self, batch))[1])
    short = _instances([(c, x) for c in CONTEXTS for x in CONTINUATIONS])
    window = getattr(model.config.get_text_config(), "sliding_window", None)
    fits = all(len(c) + len(x) <= (window or 10**9) for c, x in (scorer._encode_pair(*r.args) if r.args[0] else
               ([scorer.prefix_token_id], scorer.tok_encode(r.args[1])) for r in short))
    _compare(reference.loglikelihood(short), scorer.loglikelihood(short), TOLERANCE)
    assert bool(packed) == fits, "the shared-prefix path ran exactly when every request fits the sliding window"
    # Near and past max_length (left truncation) and past the sliding window: HFLM's own batches where they differ.
    long = _instances([(LONG[:n], x) for n in (60, 120, 400) for x in (" blue", " 🦜 ok", "x")])
    _compare(reference.loglikelihood(long), scorer.loglikelihood(long), TOLERANCE)
    if window:
        assert any(len(ctx) + len(cont) > window for ctx, cont in (scorer._encode_pair(*r.args) for r in long))
