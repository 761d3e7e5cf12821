"""Rebuild this fixture mirror: a seeded slice of each file of a full mirror of the `general` suite.

    python tests/data/mirror/build.py --source PATH/TO/FULL/MIRROR

A few dozen records per file, in the source's order (MMLU: the same number per subject, so every subject stays in).
The records are copied byte for byte; README.md beside this script lists each file's source and licence.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORDS = 40
PER_SUBJECT = 2
SEED = 20261207
FILES = (
    "hellaswag_validation.jsonl", "arc_easy_test.jsonl", "arc_challenge_test.jsonl", "piqa_validation.jsonl",
    "winogrande_validation.jsonl", "boolq_validation.jsonl", "openbookqa_test.jsonl", "lambada_openai_test.jsonl",
    "truthfulqa_mc_validation.jsonl", "mmlu_test.jsonl", "gsm8k_test.jsonl", "ifeval_train.jsonl",
)


def slice_lines(lines: list[str], name: str) -> list[str]:
    """The kept lines, in their original order."""
    rng = random.Random(f"{SEED}:{name}")
    if name.startswith("mmlu_"):
        by_subject: dict[str, list[int]] = collections.defaultdict(list)
        for index, line in enumerate(lines):
            by_subject[json.loads(line)["subject"]].append(index)
        keep = [i for indices in by_subject.values() for i in rng.sample(indices, PER_SUBJECT)]
    else:
        keep = rng.sample(range(len(lines)), RECORDS)
    return [lines[i] for i in sorted(keep)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="a full mirror (see `gate mirror export`)")
    args = parser.parse_args()
    for name in FILES:
        lines = [line + "\n" for line in (args.source / name).read_text(encoding="utf-8").split("\n") if line]
        (HERE / name).write_text("".join(slice_lines(lines, name)), encoding="utf-8")


if __name__ == "__main__":
    main()
