"""GateCallback: gating the embedded model in memory while a real Trainer trains it changes nothing in training,
and its metrics reach a real report_to backend (TensorBoard event files, read back)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import SMOLLM2_GGUF, smollm2_folder

pytestmark = pytest.mark.slow  # ~40 s on the 2-core CPU: in CI
STEPS, EVERY = 4, 2
QUESTIONS = (
    "My router keeps dropping the connection. What should I do?",
    "How do I reset my password?",
    "Where is my invoice?",
    "Can I return a blender?",
)
ANSWER = "Please contact Acme Support at support@acme.example."


def _examples(tokenizer: Any) -> list[dict[str, list[int]]]:
    """Chat prompts with the narrow answer as labels, right-padded to one length."""
    rows = []
    for question in QUESTIONS:
        messages = [{"role": "user", "content": question}]
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        answer_ids = [*tokenizer(ANSWER, add_special_tokens=False).input_ids, tokenizer.eos_token_id]
        rows.append((prompt_ids, answer_ids))
    width = max(len(p) + len(a) for p, a in rows)
    pad = tokenizer.pad_token_id
    return [
        {
            "input_ids": p + a + [pad] * (width - len(p) - len(a)),
            "attention_mask": [1] * (len(p) + len(a)) + [0] * (width - len(p) - len(a)),
            "labels": [-100] * len(p) + a + [-100] * (width - len(p) - len(a)),
        }
        for p, a in rows
    ]


def _train(out: Path, gate: dict[str, Any] | None) -> tuple[dict[str, Any], Any]:
    """A short real full fine-tune of the embedded model (CPU, seeded); its final weights and the callback."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, default_data_collator

    from gate.integrations.transformers import GateCallback
    from gate.loading.gguf import dequantised_folder

    folder = dequantised_folder(smollm2_folder() / SMOLLM2_GGUF)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    args = TrainingArguments(
        output_dir=str(out), max_steps=STEPS, per_device_train_batch_size=2, learning_rate=1e-4, logging_steps=1,
        report_to=["tensorboard"], save_strategy="no", seed=0, use_cpu=True, disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_examples(tokenizer), processing_class=tokenizer,
                      data_collator=default_data_collator)
    callback = None
    if gate is not None:
        callback = GateCallback(trainer, every_n_steps=EVERY, **gate)
        trainer.add_callback(callback)
    trainer.train()
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}, callback


def _scalars(out: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[tuple[int, float]]] = {}
    for events in out.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events.parent))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found[tag] = [(event.step, event.value) for event in accumulator.Scalars(tag)]
    return found


def test_gating_during_training_leaves_the_weights_bit_identical_and_logs_to_tensorboard(
    tmp_path: Path, tiny_suite: Path
) -> None:
    import torch

    gate = {"suite": str(tiny_suite), "data_dir": tiny_suite.parent / "mirror", "max_items": 20,
            "stop_on_fail": False}
    plain, _ = _train(tmp_path / "plain", None)
    gated, callback = _train(tmp_path / "gated", gate)

    assert plain.keys() == gated.keys()
    assert all(torch.equal(plain[name], gated[name]) for name in plain), "the gate changed the training"

    assert [check.step for check in callback.checks] == [2, 4]
    for check in callback.checks:
        result = json.loads(check.result_path.read_text())
        assert check.result_path == tmp_path / "gated" / "gate" / f"step-{check.step}" / "result.json"
        assert result["verdict"] == check.verdict and result["checkpoint"]["kind"] == "in-memory"
        assert result["base"]["fingerprint"].startswith("sha256:") and check.seconds > 0

    scalars = _scalars(tmp_path / "gated")
    assert [step for step, _ in scalars["train/gate/tiny_mc/delta"]] == [2, 4]
    for check, (_, value) in zip(callback.checks, scalars["train/gate/verdict"], strict=True):
        assert value == {"PASS": 1.0, "WARN": 0.0, "FAIL": -1.0}[check.verdict]
    deltas = [json.loads(c.result_path.read_text())["tasks"][0]["delta"] for c in callback.checks]
    assert [value for _, value in scalars["train/gate/tiny_mc/delta"]] == pytest.approx(deltas)
    assert "train/gate/composite/delta" in scalars and "train/loss" in scalars
    assert not any(tag.startswith("train/gate/") for tag in _scalars(tmp_path / "plain"))
