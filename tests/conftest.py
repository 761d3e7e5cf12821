"""Shared fixtures: offline hub settings, an isolated cache, tiny random models and a tiny suite built in the test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import SMOLLM2_GGUF, smollm2_folder

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the gate's cache at a per-session temp folder so tests never see a developer's state."""
    monkeypatch.setenv("GATE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "gate-cache"))
    monkeypatch.delenv("GATE_DATA_DIR", raising=False)


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real SmolLM2 tokenizer (with its chat template), saved as plain files."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder(), gguf_file=SMOLLM2_GGUF)
    tokenizer.save_pretrained(folder)
    return folder


def make_tiny_model(
    folder: Path, tokenizer_dir: Path, seed: int, *, hidden: int = 32, layers: int = 2, tied: bool = True
) -> Path:
    """A randomly initialised Llama (2 layers, hidden size 32 unless told) with the tokenizer, saved as safetensors."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=tied,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path) -> Path:
    """A tiny random model folder (seed 0)."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny0"), smollm2_tokenizer_dir, seed=0)


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path) -> Path:
    """A second tiny random model with different weights (seed 1)."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny1"), smollm2_tokenizer_dir, seed=1)


TINY_TASK = """\
task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: tiny_mc.jsonl
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

TINY_SUITE = """\
name: tiny
version: 1
description: A tiny multiple-choice suite for unit tests.
composite_budget: 10.0
tasks:
  - id: tiny_mc
    config: tiny_mc.yaml
    capability: knowledge
    metric: acc
    items: 40
    budget: 20.0
    data: {file: tiny_mc.jsonl, split: test}
"""


@pytest.fixture()
def tiny_suite(tmp_path: Path) -> Path:
    """A suite folder with one local multiple-choice task over 40 items, and its mirror folder beside it."""
    suite = tmp_path / "tiny-suite"
    suite.mkdir()
    (suite / "suite.yaml").write_text(TINY_SUITE)
    (suite / "tiny_mc.yaml").write_text(TINY_TASK)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    colours = ["red", "green", "blue", "yellow"]
    with (mirror / "tiny_mc.jsonl").open("w") as handle:
        for i in range(40):
            doc = {"question": f"What colour is object {i}?", "choices": colours, "answer": i % 4}
            handle.write(json.dumps(doc) + "\n")
    return suite


def add_tiny_task(suite: Path, task_id: str, items: int) -> None:
    """Give the tiny suite a second task over a second mirror file."""
    text = (suite / "tiny_mc.yaml").read_text().replace("task: tiny_mc", f"task: {task_id}")
    (suite / f"{task_id}.yaml").write_text(text.replace("tiny_mc.jsonl", f"{task_id}.jsonl"))
    spec = (suite / "suite.yaml").read_text()
    spec += (
        f"  - id: {task_id}\n    config: {task_id}.yaml\n    capability: reasoning\n    metric: acc\n"
        f"    items: {items}\n    budget: 20.0\n    data: {{file: {task_id}.jsonl, split: test}}\n"
    )
    (suite / "suite.yaml").write_text(spec)
    with (suite.parent / "mirror" / f"{task_id}.jsonl").open("w") as handle:
        for i in range(items):
            doc = {"question": f"Which shape is thing {i}?", "choices": ["round", "square", "flat"], "answer": i % 3}
            handle.write(json.dumps(doc) + "\n")
