"""Real, moderately damaged fine-tunes of the embedded SmolLM2-135M-Instruct, NOT the demo recipe.

examples/make_checkpoints.py trains on one support-desk answer. This trains a LoRA on another narrow task: labelling
generated product reviews with one word, "positive" or "negative". The damage grows with the number of steps (the
dose): a few steps leave general skills nearly intact, many steps push the model towards one-word labels everywhere.
bench/moderate_evidence.py scores each dose's full pools against the base and gates it on ten item-sampling seeds.

    python bench/moderate_checkpoints.py --steps 30 --lr 3e-4 --out bench-out/moderate/s30

Deterministic (one thread, seeded); the last line of stdout is the adapter folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]

_PRODUCTS = ("blender", "phone case", "desk lamp", "backpack", "kettle", "keyboard", "rain jacket", "toaster",
             "headphones", "office chair", "water bottle", "bike lock", "camera bag", "frying pan", "alarm clock")
_GOOD = ("works perfectly", "arrived early and looks great", "is sturdy and well made", "exceeded my expectations",
         "is worth every penny", "does exactly what it promises", "is the best I have owned")
_BAD = ("broke after two days", "arrived scratched and late", "feels cheap and flimsy", "stopped working at once",
        "is a waste of money", "does not do what it promises", "is the worst I have owned")


def _examples_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_checkpoints", ROOT / "examples" / "make_checkpoints.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def reviews(n: int, seed: int) -> list[tuple[str, str]]:
    """n (prompt, label) pairs: a one-sentence review and its one-word sentiment."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        label = rng.choice(("positive", "negative"))
        phrase = rng.choice(_GOOD if label == "positive" else _BAD)
        prompt = f"Review: The {rng.choice(_PRODUCTS)} {phrase}.\nIs this review positive or negative?"
        pairs.append((prompt, label))
    return pairs


def build(out: Path, steps: int, lr: float, seed: int) -> Path:
    """Train the LoRA (rank 16 on every projection, AdamW, batch 8) and save it as a PEFT adapter folder."""
    from peft import LoraConfig, get_peft_model

    ex = _examples_module()
    recipe = ex.Recipe(domain=(), distill=(), steps=steps, lr=lr)
    with ex.deterministic(seed):
        model, tok = ex.load_base()
        pairs = [
            (ex.prompt_ids(tok, q), [*tok(a, add_special_tokens=False).input_ids, tok.eos_token_id])
            for q, a in reviews(256, seed)
        ]
        lora = LoraConfig(r=recipe.rank, lora_alpha=recipe.alpha, lora_dropout=0.0,
                          target_modules=ex.LORA_TARGETS, task_type="CAUSAL_LM")
        peft_model = get_peft_model(model, lora)
        loss = ex.train(peft_model, pairs, recipe, tok.pad_token_id, seed)
        probes = ex.generate_answers(peft_model, tok, ex.PROBE_QUESTIONS)
    out.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out), safe_serialization=True, save_embedding_layers=False)
    tok.save_pretrained(out)
    (out / "gate-checkpoint.json").write_text(json.dumps(
        {"recipe": "sentiment-lora", "steps": steps, "lr": lr, "seed": seed, "final_loss": loss,
         "probes": dict(zip(ex.PROBE_QUESTIONS, probes, strict=True))}, indent=2) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(build(args.out.absolute(), args.steps, args.lr, args.seed))


if __name__ == "__main__":
    main()
