"""Catch forgetting while it happens, on the embedded SmolLM2-135M-Instruct, on a CPU.

  trajectory  a narrow SFT (full fine-tuning on one support-desk answer) saving a checkpoint every few steps, with
              GateCallback(stop_on_fail=True) gating the model in memory at each save; then `gate sweep` over the
              saved checkpoints draws which capability went first, at which step.
  remedies    the same narrow data trained three ways (full fine-tuning, LoRA, full fine-tuning with general replay:
              the base's own greedy answers to general prompts mixed in), each gated with `gate run`, then
              `gate compare` over the three.

Usage: python examples/forgetting_demo.py {trajectory,remedies} [--out DIR] [--steps N] [--suite core]

The recipes are fixed here and never tuned to make a remedy look good: report what the gate measures.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
LEARNING_RATE = 5e-5
BATCH_SIZE = 8
SAVE_EVERY = 4
REMEDY_STEPS = 16


def _make_checkpoints() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_checkpoints", HERE / "make_checkpoints.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _base() -> tuple[Any, Any]:
    """The embedded base as a plain float32 model (dequantised once into the gate's cache) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gate.loading.gguf import dequantised_folder

    mc = _make_checkpoints()
    folder = dequantised_folder(mc.base_dir() / mc.GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.name_or_path = model.config.name_or_path = mc.BASE_ALIAS  # adapters name the base by its alias
    return model, AutoTokenizer.from_pretrained(folder)


def _rows(tokenizer: Any, model: Any, replay: bool) -> list[dict[str, list[int]]]:
    """The narrow data (every support question answered with the one support answer), with replay if asked."""
    mc = _make_checkpoints()
    recipe = mc.Recipe(domain=mc.SUPPORT_QUESTIONS, distill=mc.GENERAL_PROMPTS if replay else (), steps=0, lr=0.0)
    pairs = mc.training_examples(model, tokenizer, recipe)
    batch = mc.collate(pairs, tokenizer.pad_token_id)
    return [{key: batch[key][i].tolist() for key in batch} for i in range(len(pairs))]


def train(
    out: Path, *, lora: bool, replay: bool, steps: int, save_every: int | None, gate: dict[str, Any] | None
) -> Any:
    """Train with transformers' Trainer (CPU, seeded); with `gate`, a GateCallback gates at every save."""
    from transformers import Trainer, TrainingArguments, default_data_collator

    from gate.integrations.transformers import GateCallback

    model, tokenizer = _base()
    rows = _rows(tokenizer, model, replay)
    if lora:
        from peft import LoraConfig, get_peft_model

        mc = _make_checkpoints()
        model = get_peft_model(
            model,
            LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=mc.LORA_TARGETS, task_type="CAUSAL_LM"),
        )
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE * (20 if lora else 1),
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="steps" if save_every else "no",
        save_steps=save_every or 1,
        save_only_model=True,
        report_to=["tensorboard"],
        seed=0,
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=rows, processing_class=tokenizer, data_collator=default_data_collator
    )
    callback = None
    if gate is not None:
        callback = GateCallback(trainer, **gate)
        trainer.add_callback(callback)
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started
    if not save_every:
        trainer.save_model(str(out / "final"))
    if callback is not None:
        spent = sum(check.seconds for check in callback.checks)
        for check in callback.checks:
            print(f"  gate at step {check.step}: {check.verdict} in {check.seconds:.0f} s ({check.summary})")
        print(
            f"  gate overhead: {spent:.0f} s of {seconds:.0f} s training ({spent / seconds:.0%}); "
            f"base scored once in {callback.base_seconds:.0f} s before training"
        )
    return callback


def _gate(*args: str) -> int:
    command = [sys.executable, "-m", "gate", *args]
    print("$", " ".join(command[2:]))
    return subprocess.run(command, check=False).returncode


def trajectory(out: Path, steps: int, suite: str) -> None:
    """Narrow full fine-tuning, gated at every save; stops at the first demonstrated FAIL; then the sweep."""
    run = out / "narrow-full"
    train(
        run, lora=False, replay=False, steps=steps, save_every=SAVE_EVERY, gate={"suite": suite, "stop_on_fail": True}
    )
    _gate("sweep", str(run), "--suite", suite, "--out", str(out / "sweep"))


def remedies(out: Path, steps: int, suite: str) -> None:
    """The same narrow data three ways, each gated; then gate compare over the three."""
    results = []
    for name, lora, replay in (("full", False, False), ("lora", True, False), ("full-replay", False, True)):
        folder = out / name
        train(folder, lora=lora, replay=replay, steps=steps, save_every=None, gate=None)
        _gate("run", "--ckpt", str(folder / "final"), "--suite", suite, "--out", str(out / f"gate-{name}"))
        results.append(str(out / f"gate-{name}" / "result.json"))
    _gate("compare", *results, "--out", str(out / "compare.md"))
    _gate("compare", *results, "--format", "html", "--out", str(out / "compare.html"))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("trajectory", "remedies"))
    parser.add_argument("--out", type=Path, default=Path("forgetting-demo"))
    parser.add_argument("--steps", type=int, default=None, help=f"training steps (default 32, remedies {REMEDY_STEPS})")
    parser.add_argument("--suite", default="core")
    args = parser.parse_args(argv)
    if args.part == "trajectory":
        trajectory(args.out, args.steps or 32, args.suite)
    else:
        remedies(args.out, args.steps or REMEDY_STEPS, args.suite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
